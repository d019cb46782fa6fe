//! Phone numbers in E.164, the key that merges what calls and bookings say about a person.

use foldhash::HashMap;
use std::cell::RefCell;

use phonenumber::country;

/// Numbers without a country code are read as German ones: the business this replaces is in
/// Germany, and its callers' numbers arrive as `0151…` as often as `+49151…`.
const DEFAULT_REGION: country::Id = country::Id::DE;

/// Entries kept before the cache starts over (a few tens of MiB at most). Parsing with
/// libphonenumber's metadata costs microseconds, and the same numbers call again and again;
/// the bound keeps memory flat however long the history is.
const CACHE_LIMIT: usize = 262_144;

/// Normalizes one number; None when it is not a phone number at all.
pub fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    let number = phonenumber::parse(Some(DEFAULT_REGION), trimmed).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// A business's number, the key of number routing and attribution: [`normalize`]d, or, when
/// libphonenumber's metadata does not know it as valid but it is written in E.164 (`+` and 8
/// to 15 digits, the rule a tenant's registry checks), kept as written without separators. A
/// branch may register such a number, and the calls to it must meet it under the same key.
/// Customers' numbers stay strict ([`normalize`]): a caller's E.164-shaped placeholder (an
/// anonymous caller's, say) must not become one customer of every such call.
pub fn normalize_business(raw: &str) -> Option<String> {
    normalize(raw).or_else(|| as_written_e164(raw))
}

fn as_written_e164(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.' | '/' | '(' | ')'))
        .collect();
    switchboard_domain::tenant::is_e164(&compact).then_some(compact)
}

/// Loads libphonenumber's metadata and compiles the default region's patterns, which the
/// first [`normalize`] in a process would otherwise do: measured at ~80 ms for the first
/// number and ~0.2 ms more for the first national one. A service calls this while it starts,
/// so the first deliveries after a restart do not wait for it (the server looks up the number
/// a call dialled on its reactor threads).
pub fn warm_up() {
    for sample in ["+49 30 1234567", "030 1234567", "0151 12345678"] {
        normalize(sample);
    }
}

/// A memo of [`normalize`] for one fold.
#[derive(Default)]
pub(crate) struct PhoneBook {
    cache: RefCell<HashMap<String, Option<String>>>,
}

impl PhoneBook {
    pub(crate) fn normalize(&self, raw: Option<&str>) -> Option<String> {
        let raw = raw?;
        if let Some(hit) = self.cache.borrow().get(raw) {
            return hit.clone();
        }
        let normalized = normalize(raw);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(raw.to_owned(), normalized.clone());
        normalized
    }

    /// [`normalize_business`], through the memo.
    pub(crate) fn normalize_business(&self, raw: Option<&str>) -> Option<String> {
        self.normalize(raw)
            .or_else(|| raw.and_then(as_written_e164))
    }

    /// Takes in numbers another memo normalized already (the rebuild's reader thread parses
    /// the numbers of a page while the fold thread writes the previous one).
    pub(crate) fn learn(&self, known: impl IntoIterator<Item = (String, Option<String>)>) {
        let mut cache = self.cache.borrow_mut();
        for (raw, normalized) in known {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(raw, normalized);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_forms_meet_in_e164() {
        assert_eq!(
            normalize("+49 151 23456789").as_deref(),
            Some("+4915123456789")
        );
        assert_eq!(
            normalize("0151 23456789").as_deref(),
            Some("+4915123456789")
        );
        assert_eq!(normalize("030 83793369").as_deref(), Some("+493083793369"));
        assert_eq!(
            normalize("+1 415 555 2671").as_deref(),
            Some("+14155552671")
        );
    }

    #[test]
    fn what_is_not_a_number_is_none() {
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("anonymous"), None);
        assert_eq!(normalize("12"), None);
    }

    /// A registry may hold numbers libphonenumber does not know (`is_e164` is its rule): an
    /// unassigned country code here, or a range its metadata lacks. As a business's number it
    /// is kept as written; as a customer's it is none.
    #[test]
    fn an_e164_business_number_libphonenumber_does_not_know_is_kept_as_written() {
        assert!(
            phonenumber::parse(Some(DEFAULT_REGION), "+999123456789")
                .map_or(true, |n| !phonenumber::is_valid(&n)),
            "the example is one libphonenumber refuses"
        );
        assert_eq!(normalize("+999123456789"), None);
        assert_eq!(
            normalize_business("+999123456789").as_deref(),
            Some("+999123456789")
        );
        assert_eq!(
            normalize_business(" +999 (123) 456-789 ").as_deref(),
            Some("+999123456789")
        );
        assert_eq!(
            normalize_business("030 83793369").as_deref(),
            Some("+493083793369")
        );
        assert_eq!(normalize_business("0000 1234567"), None);
        let book = PhoneBook::default();
        assert_eq!(book.normalize(Some("+999123456789")), None);
        assert_eq!(
            book.normalize_business(Some("+999123456789")).as_deref(),
            Some("+999123456789")
        );
    }

    #[test]
    fn the_memo_answers_like_normalize() {
        let book = PhoneBook::default();
        for raw in ["0151 23456789", "0151 23456789", "nope"] {
            assert_eq!(book.normalize(Some(raw)), normalize(raw));
        }
        assert_eq!(book.normalize(None), None);
    }

    #[test]
    fn learned_numbers_answer_like_normalize() {
        let reader = PhoneBook::default();
        let folder = PhoneBook::default();
        let known: Vec<_> = ["0151 23456789", "nope"]
            .into_iter()
            .map(|raw| (raw.to_owned(), reader.normalize(Some(raw))))
            .collect();
        folder.learn(known);
        for raw in ["0151 23456789", "nope", "030 83793369"] {
            assert_eq!(folder.normalize(Some(raw)), normalize(raw));
        }
    }
}
