//! Calls to the node the console was served by: JSON over `fetch`, the API key in an
//! `Authorization: Bearer` header, errors as the API's typed [`ApiError`]s, and event
//! streams read from the response body (the browser's `EventSource` cannot send headers).
//!
//! Sign-in keeps the key in the tab's `sessionStorage` (gone when the tab closes, never sent
//! anywhere but this origin). Single sign-on (OIDC) will end in a bearer token as well, so
//! only the sign-in page will change.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, Request, RequestInit, Response};

use crate::sse::{SseEvent, SseParser};

const KEY_ITEM: &str = "x0t.api_key";

/// What went wrong with a call, as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status (0: the request never got an answer).
    pub(crate) status: u16,
    /// The API's stable code (`not_found`, `policy_test_failed`…), or `network`.
    pub(crate) code: String,
    /// For people.
    pub(crate) message: String,
    /// For an invalid document: its 1-based line.
    pub(crate) line: Option<u32>,
    /// For an invalid document: its 1-based column.
    pub(crate) column: Option<u32>,
}

impl ApiError {
    fn network(what: impl std::fmt::Display) -> Self {
        Self {
            status: 0,
            code: "network".into(),
            message: format!("the node did not answer: {what}"),
            line: None,
            column: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(col)) => write!(f, "line {line}, column {col}: {}", self.message),
            (Some(line), None) => write!(f, "line {line}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn js_text(value: &JsValue) -> String {
    value
        .as_string()
        .or_else(|| {
            value
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{value:?}"))
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

/// The API key of this tab's sign-in, if any.
pub(crate) fn stored_key() -> Option<String> {
    storage()?
        .get_item(KEY_ITEM)
        .ok()?
        .filter(|k| !k.is_empty())
}

/// Remembers (or, with `None`, forgets) this tab's API key.
pub(crate) fn store_key(key: Option<&str>) {
    if let Some(storage) = storage() {
        let _ = match key {
            Some(key) => storage.set_item(KEY_ITEM, key),
            None => storage.remove_item(KEY_ITEM),
        };
    }
}

/// Sends a request; a non-2xx answer becomes its typed error.
pub(crate) async fn call(
    method: &str,
    path: &str,
    body: Option<String>,
    signal: Option<&AbortSignal>,
) -> Result<Response, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(|e| ApiError::network(js_text(&e)))?;
    if let Some(key) = stored_key() {
        let _ = headers.set("authorization", &format!("Bearer {key}"));
    }
    if let Some(body) = &body {
        let _ = headers.set("content-type", "application/json");
        init.set_body(&JsValue::from_str(body));
    }
    init.set_headers(&headers);
    if let Some(signal) = signal {
        init.set_signal(Some(signal));
    }
    let request =
        Request::new_with_str_and_init(path, &init).map_err(|e| ApiError::network(js_text(&e)))?;
    let window = web_sys::window().ok_or_else(|| ApiError::network("no window"))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|e| ApiError::network(js_text(&e)))?
        .unchecked_into();
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = read_text(&response).await.unwrap_or_default();
    let error = match serde_json::from_str::<x0t_types::api::ErrorBody>(&text) {
        Ok(body) => ApiError {
            status,
            code: body.error.code,
            message: body.error.message,
            line: body.error.line,
            column: body.error.column,
        },
        Err(_) => ApiError {
            status,
            code: format!("http_{status}"),
            message: format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
            line: None,
            column: None,
        },
    };
    if status == 401 {
        // The key stopped working (deleted, or the node was reset): back to sign-in.
        crate::app::signed_out(&error.message);
    }
    Err(error)
}

async fn read_text(response: &Response) -> Result<String, ApiError> {
    let promise = response
        .text()
        .map_err(|e| ApiError::network(js_text(&e)))?;
    let text = JsFuture::from(promise)
        .await
        .map_err(|e| ApiError::network(js_text(&e)))?;
    Ok(text.as_string().unwrap_or_default())
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError {
        status: 200,
        code: "bad_answer".into(),
        message: format!("the node's answer did not decode: {e}"),
        line: None,
        column: None,
    })
}

/// `GET path` as JSON.
pub(crate) async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let response = call("GET", path, None, None).await?;
    decode(&read_text(&response).await?)
}

/// `GET path` as text (exports).
pub(crate) async fn get_text(path: &str) -> Result<String, ApiError> {
    let response = call("GET", path, None, None).await?;
    read_text(&response).await
}

/// `method path` with a JSON body, answer as JSON.
pub(crate) async fn send<B: Serialize, T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &B,
) -> Result<T, ApiError> {
    let body = serde_json::to_string(body).map_err(ApiError::network)?;
    let response = call(method, path, Some(body), None).await?;
    decode(&read_text(&response).await?)
}

/// Reads the server-sent events at `path` until the stream ends, `signal` aborts it or the
/// connection fails; `on_open` runs once the stream is accepted, `on_event` gets each event. Returns the parser (its last event id is
/// where a reconnection resumes).
pub(crate) async fn follow(
    path: &str,
    signal: &AbortSignal,
    on_open: impl FnOnce(),
    mut on_event: impl FnMut(SseEvent),
) -> Result<SseParser, ApiError> {
    let response = call("GET", path, None, Some(signal)).await?;
    on_open();
    let body = response
        .body()
        .ok_or_else(|| ApiError::network("the event stream has no body"))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut parser = SseParser::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| ApiError::network(js_text(&e)))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(parser);
        }
        if let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) {
            let bytes = js_sys::Uint8Array::new(&value).to_vec();
            for event in parser.push(&bytes) {
                on_event(event);
            }
        }
    }
}

/// Waits `ms` milliseconds.
pub(crate) async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Offers `content` as a file download named `name`.
pub(crate) fn download(name: &str, mime: &str, content: &str) -> Result<(), ApiError> {
    let fail = |e: JsValue| ApiError::network(js_text(&e));
    let parts = js_sys::Array::of1(&JsValue::from_str(content));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(fail)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| ApiError::network("no document"))?;
    let link: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(fail)?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    link.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Milliseconds since the Unix epoch, by the browser's clock.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Records a named point in the page's performance timeline (read by the benchmark).
pub(crate) fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(text: &str) -> String {
    String::from(js_sys::encode_uri_component(text))
}
