//! Text from outside (T-Bank, sheets, CSV files, the model) made storable: PostgreSQL's
//! `text` refuses U+0000, and one NUL in a transcript would fail the whole call's save.
//! Every other character is valid in a UTF-8 database, so NUL is all that is removed.

use std::borrow::Cow;

/// Characters PostgreSQL's UTF-8 `text` refuses.
fn refused(c: char) -> bool {
    c == '\0'
}

/// `s` without the characters PostgreSQL's text refuses; borrowed when there are none.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.contains(refused) {
        Cow::Owned(s.chars().filter(|c| !refused(*c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// [`clean`] for an owned string, without a copy when there is nothing to remove.
pub fn clean_string(s: String) -> String {
    match clean(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => o,
    }
}

/// The bytes of a UTF-8 file without its NUL bytes (in UTF-8 a 0 byte is only ever U+0000).
pub fn clean_bytes(b: &[u8]) -> Cow<'_, [u8]> {
    if b.contains(&0) {
        Cow::Owned(b.iter().copied().filter(|&x| x != 0).collect())
    } else {
        Cow::Borrowed(b)
    }
}

/// Every string (keys included) of a JSON value from outside, cleaned in place.
pub fn clean_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains(refused) => {
            *s = clean_string(std::mem::take(s));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(clean_json),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains(refused)) {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    clean_json(&mut val);
                    map.insert(clean_string(k), val);
                }
            } else {
                map.values_mut().for_each(clean_json);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_removed_and_everything_else_kept() {
        assert_eq!(clean("Ива\0нова\0"), "Иванова");
        assert!(matches!(clean("Иванова 🙂\t\u{1}"), Cow::Borrowed(_)));
        assert_eq!(clean_string("a\0b".into()), "ab");
        assert_eq!(clean_string("\0".into()), "");
        assert_eq!(&*clean_bytes(b"a\0b"), b"ab");
        let mut v = serde_json::json!({"re\0ason": ["x\0y", {"k": "\0"}], "n": 1});
        clean_json(&mut v);
        assert_eq!(v, serde_json::json!({"reason": ["xy", {"k": ""}], "n": 1}));
    }
}
