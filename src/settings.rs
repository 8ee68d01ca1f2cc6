//! The one word the modules' settings types share with `config`: [`Invalid`], a problem with one field of a
//! section. Each module validates its own settings type and names the field; `config` adds the section (and
//! the environment variable, when the value came from one), so this module imports nothing of the crate.

/// A settings field with a bad value: the field's name within its section, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// The field, relative to its section (`allow_origins` of `[cors]`).
    pub field: &'static str,
    /// What is wrong, for a person.
    pub problem: String,
}

impl Invalid {
    /// A problem with `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Invalid {
        Invalid {
            field,
            problem: problem.into(),
        }
    }
}
