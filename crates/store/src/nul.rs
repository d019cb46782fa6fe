//! NUL characters in events' text. A provider's text (a transcript, a name) may carry one,
//! escaped in its JSON as `\u0000`; every store keeps it, but PostgreSQL's `text` and `jsonb`
//! cannot hold it, so what lives there (the PostgreSQL store's queryable copy, the read models)
//! shows U+FFFD in its place.

use std::borrow::Cow;

use serde_json::Value;

/// The character shown where text held a NUL.
const NUL_REPLACEMENT: &str = "\u{FFFD}";

/// Serialized JSON with U+FFFD for every NUL in its strings and keys, compact and key-sorted;
/// None when it holds no NUL (or is not JSON), which is nearly always and costs one scan: in
/// JSON a NUL can only be the escape `\u0000`, so only text holding that is parsed.
pub fn json_without_nul(json: &str) -> Option<String> {
    if !may_hold_nul(json) {
        return None;
    }
    let mut value: Value = serde_json::from_str(json).ok()?;
    replace_nul(&mut value).then(|| value.to_string())
}

/// Text with U+FFFD for every NUL; borrowed, without a copy, when it holds none.
pub fn text_without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', NUL_REPLACEMENT))
    } else {
        Cow::Borrowed(text)
    }
}

/// Whether serialized JSON may hold a NUL in a string or key: it can only be the escape
/// `\u0000` (an escaped backslash before `u0000` also matches, and holds none).
fn may_hold_nul(json: &str) -> bool {
    json.contains("\\u0000")
}

/// Replaces every NUL in the value's strings and keys with U+FFFD; true if there was one.
fn replace_nul(value: &mut Value) -> bool {
    match value {
        Value::String(text) => match text_without_nul(text) {
            Cow::Owned(replaced) => {
                *text = replaced;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |any, v| replace_nul(v) | any),
        Value::Object(fields) => {
            let mut any = fields
                .values_mut()
                .fold(false, |any, v| replace_nul(v) | any);
            if fields.keys().any(|key| key.contains('\0')) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(key, v)| (text_without_nul(&key).into_owned(), v))
                    .collect();
                any = true;
            }
            any
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_in_strings_and_keys_becomes_the_replacement_character() {
        let mut value = json!({"t": "a\u{0}b", "list": [{"k\u{0}": "\u{0}"}], "n": 0});
        assert!(replace_nul(&mut value));
        assert_eq!(
            value,
            json!({"t": "a\u{FFFD}b", "list": [{"k\u{FFFD}": "\u{FFFD}"}], "n": 0})
        );
    }

    #[test]
    fn a_value_without_nul_is_left_alone() {
        let mut value = json!({"t": "C:\\u0000", "n": [1, "x"]});
        let before = value.clone();
        assert!(
            may_hold_nul(&value.to_string()),
            "the escaped backslash matches"
        );
        assert!(!replace_nul(&mut value));
        assert_eq!(value, before);
    }
}
