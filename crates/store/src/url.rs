//! Store URLs may carry a parameter of ours (PostgreSQL's `?schema=`, KurrentDB's
//! `?namespace=`) beside the driver's own; it is taken out before the driver sees the URL.

/// Removes `name=value` from the URL's query and returns the URL without it, and the value.
/// Other parameters stay, in order.
pub fn take_query_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let prefix = format!("{name}=");
    let mut value = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix(prefix.as_str()) {
            Some(found) => {
                value = Some(found.to_owned());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, value)
}

#[cfg(test)]
mod tests {
    use super::take_query_param;

    #[test]
    fn our_parameter_is_taken_out_and_the_drivers_stay() {
        assert_eq!(
            take_query_param("postgres://u@h/db?schema=sb_1&connect_timeout=3", "schema"),
            (
                "postgres://u@h/db?connect_timeout=3".to_owned(),
                Some("sb_1".to_owned())
            )
        );
        assert_eq!(
            take_query_param("postgres://u@h/db", "schema"),
            ("postgres://u@h/db".to_owned(), None)
        );
        // A parameter whose name merely starts the same is not ours.
        assert_eq!(
            take_query_param("kdb://h?namespaces=x", "namespace"),
            ("kdb://h?namespaces=x".to_owned(), None)
        );
    }
}
