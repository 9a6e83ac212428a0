//! An incremental parser of server-sent events (the `text/event-stream` format of the
//! WHATWG HTML standard), fed the response body in whatever chunks the network delivers.
//! The browser's `EventSource` cannot send an `Authorization` header, so the console reads
//! the stream with `fetch` and parses it here. Lines are split on bytes, so a UTF-8
//! character cut across two chunks is decoded whole; a line longer than
//! [`MAX_LINE_BYTES`] is dropped rather than buffered without bound.

/// Longest line kept; a longer one (a broken or hostile stream) is skipped.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// One event of the stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `id:` (the last one seen, as the standard says), if any.
    pub id: Option<String>,
    /// Its `event:` type (`message` when absent).
    pub event: String,
    /// Its `data:` lines, joined with `\n`.
    pub data: String,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    skipping: bool,
    last_id: Option<String>,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen: where a reconnection resumes (`?after=` / `Last-Event-ID`).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds the next chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut done = Vec::new();
        for &byte in chunk {
            if byte == b'\n' {
                if !self.skipping {
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.line_done(&String::from_utf8_lossy(&line), &mut done);
                }
                self.line.clear();
                self.skipping = false;
            } else if !self.skipping {
                if self.line.len() >= MAX_LINE_BYTES {
                    self.line.clear();
                    self.skipping = true;
                } else {
                    self.line.push(byte);
                }
            }
        }
        done
    }

    fn line_done(&mut self, line: &str, done: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                let data = std::mem::take(&mut self.data);
                done.push(SseEvent {
                    id: self.last_id.clone(),
                    event: if self.event.is_empty() {
                        "message".to_owned()
                    } else {
                        std::mem::take(&mut self.event)
                    },
                    data: data.strip_suffix('\n').unwrap_or(&data).to_owned(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            // An id with a NUL is ignored, as the standard says.
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_parsed_whole() {
        let stream = "id: 7\nevent: link_down\ndata: {\"node\":\"ä\"}\n\n: keep-alive\n\nid: 8\r\ndata: a\r\ndata: b\r\n\r\n";
        let whole = SseParser::new().push(stream.as_bytes());
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    event: "link_down".into(),
                    data: "{\"node\":\"ä\"}".into()
                },
                SseEvent {
                    id: Some("8".into()),
                    event: "message".into(),
                    data: "a\nb".into()
                },
            ]
        );
        // Every split point, including inside the two-byte 'ä', gives the same events.
        let bytes = stream.as_bytes();
        for cut in 0..bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&bytes[..cut]);
            events.extend(parser.push(&bytes[cut..]));
            assert_eq!(events, whole, "split at {cut}");
            assert_eq!(parser.last_id(), Some("8"));
        }
    }

    #[test]
    fn an_overlong_line_is_skipped_and_the_stream_goes_on() {
        let mut parser = SseParser::new();
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut events = parser.push(b"data: ");
        events.extend(parser.push(&long));
        events.extend(parser.push(b"\n\ndata: ok\n\n"));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "ok");
        assert!(parser.line.capacity() <= 2 * MAX_LINE_BYTES);
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"event: x\nid: 3\n\n").is_empty());
        assert_eq!(parser.last_id(), Some("3"));
        let events = parser.push(b"data\n\n");
        assert_eq!(events[0].data, "");
        assert_eq!(events[0].id.as_deref(), Some("3"));
    }
}
