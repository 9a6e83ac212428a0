/// Why a value could not be parsed into one of the types of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TypesError {
    /// Text that should be base32 is not.
    #[error("invalid base32: {reason}")]
    Base32 {
        /// What is wrong with it.
        reason: String,
    },
    /// A node id of the wrong length or alphabet.
    #[error("invalid node id {text:?}: {reason}")]
    NodeId {
        /// The offending text (truncated to a sane length).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A mesh name outside the accepted form.
    #[error("invalid mesh name {text:?}: {reason}")]
    MeshId {
        /// The offending text (truncated to a sane length).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tag outside the accepted form.
    #[error("invalid tag {text:?}: {reason}")]
    Tag {
        /// The offending text (truncated to a sane length).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An unknown name or code for one of the domain enums.
    #[error("unknown {kind} {value}; expected one of: {expected}")]
    UnknownVariant {
        /// Which enum, e.g. "device class".
        kind: &'static str,
        /// The value that was given.
        value: String,
        /// The accepted values, comma separated.
        expected: &'static str,
    },
}

/// Shortens user input quoted back in an error so a huge value cannot flood logs.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
