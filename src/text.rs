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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_removed_and_everything_else_kept() {
        assert_eq!(clean("Ива\0нова\0"), "Иванова");
        assert!(matches!(clean("Иванова 🙂\t\u{1}"), Cow::Borrowed(_)));
        assert_eq!(clean_string("a\0b".into()), "ab");
        assert_eq!(clean_string("\0".into()), "");
    }
}
