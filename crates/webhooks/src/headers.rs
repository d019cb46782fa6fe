//! Header access without depending on an HTTP crate.

/// Looks up a request header by name, case-insensitively. Values are raw bytes, because a
/// header value need not be UTF-8 and a verifier must not panic on one that is not.
///
/// Implemented for slices, arrays and vectors of `(name, value)` pairs, so the server can pass
/// `headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect::<Vec<_>>()` and tests can
/// pass `[("Stripe-Signature", "t=…")]`.
pub trait HeaderLookup {
    /// The first value of the header `name`, compared ASCII case-insensitively.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.as_ref().trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> HeaderLookup for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<H: HeaderLookup + ?Sized> HeaderLookup for &H {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (**self).header(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_values_are_bytes() {
        let headers = [("x-retell-SIGNATURE", b"sha256=\xff".as_slice())];
        assert_eq!(
            headers.header("X-Retell-Signature"),
            Some(b"sha256=\xff".as_slice())
        );
        assert_eq!(headers.header("Stripe-Signature"), None);
        let owned = vec![("Stripe-Signature".to_owned(), "t=1".to_owned())];
        assert_eq!(owned.header("stripe-signature"), Some(b"t=1".as_slice()));
    }
}
