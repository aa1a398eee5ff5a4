//! The method the application will run. A POST may ask for another one with
//! `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` or a
//! `_method` query parameter, and many stacks grant it: Rails by default
//! (Rack::MethodOverride), Symfony and Laravel, Express's `method-override`,
//! ASP.NET Core's `UseHttpMethodOverride`. A rule or exclusion chosen by the
//! method sent would then guard another endpoint than the one that runs, so
//! [`crate::policy::Policy::route_target`] routes such a request under both
//! methods and refuses it when they disagree.
//!
//! A `_method` in a form body is out of sight of an ext_authz check (the
//! proxy does not forward the body); the README says so.

use crate::http::RequestHead;

use super::Unreadable;
use super::source::{pairs, same_decoded_name, same_header_name};

/// The headers that override a POST's method.
const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The method a POST asks to be run as, if it asks; `query` is the original
/// request's query string. Several overrides must agree, and each must be a
/// method token.
pub fn overriding_method<'b>(
    method: &[u8],
    head: &RequestHead<'_, 'b>,
    query: &'b [u8],
) -> Result<Option<&'b [u8]>, Unreadable> {
    if !method.eq_ignore_ascii_case(b"POST") {
        return Ok(None);
    }
    let from_headers = head.header_values_where(|field| {
        OVERRIDE_HEADERS
            .iter()
            .any(|name| same_header_name(field, name))
    });
    let from_query = pairs(query, b"&;")
        .filter(|(name, _)| same_decoded_name(name, "_method"))
        .map(|(_, value)| value);
    let mut chosen: Option<&[u8]> = None;
    for value in from_headers.chain(from_query) {
        let value = value.trim_ascii();
        // An empty override is ignored by every stack that reads one.
        if value.is_empty() {
            continue;
        }
        if !value.iter().all(|&b| b.is_ascii_alphabetic() || b == b'-') {
            return Err(Unreadable::MethodOverride);
        }
        match chosen {
            Some(first) if !first.eq_ignore_ascii_case(value) => {
                return Err(Unreadable::MethodOverride);
            }
            Some(_) => {}
            None => chosen = Some(value),
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{HeadStatus, HeaderSlots, Limits, parse_head};

    fn overriding(method: &str, fields: &str, query: &str) -> Result<Option<String>, Unreadable> {
        let request = format!("{method} / HTTP/1.1\r\nHost: h\r\n{fields}\r\n");
        let mut slots = HeaderSlots::default();
        let HeadStatus::Complete(head) =
            parse_head(request.as_bytes(), &mut slots, Limits::default()).unwrap()
        else {
            panic!("complete");
        };
        overriding_method(method.as_bytes(), &head, query.as_bytes())
            .map(|m| m.map(|m| String::from_utf8(m.to_vec()).unwrap()))
    }

    #[test]
    fn a_post_may_ask_for_another_method() {
        let delete = Ok(Some("DELETE".to_owned()));
        assert_eq!(
            overriding("POST", "X-HTTP-Method-Override: DELETE\r\n", ""),
            delete
        );
        assert_eq!(overriding("post", "x_http_method: DELETE\r\n", ""), delete);
        assert_eq!(
            overriding("POST", "X-Method-Override:  DELETE \r\n", ""),
            delete
        );
        assert_eq!(overriding("POST", "", "a=1&_method=DELETE"), delete);
        assert_eq!(overriding("POST", "", "_METHOD=DELETE"), delete);
        assert_eq!(
            overriding(
                "POST",
                "X-HTTP-Method-Override: delete\r\n",
                "_method=DELETE"
            ),
            Ok(Some("delete".to_owned()))
        );
        assert_eq!(overriding("POST", "", ""), Ok(None));
        assert_eq!(
            overriding("POST", "X-HTTP-Method-Override: \r\n", "_method="),
            Ok(None)
        );
        // Only a POST is overridden.
        assert_eq!(
            overriding("GET", "X-HTTP-Method-Override: DELETE\r\n", ""),
            Ok(None)
        );
        assert_eq!(overriding("PUT", "", "_method=DELETE"), Ok(None));
    }

    #[test]
    fn overrides_that_disagree_or_are_not_methods_are_refused() {
        let refused = Err(Unreadable::MethodOverride);
        assert_eq!(
            overriding(
                "POST",
                "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: PUT\r\n",
                ""
            ),
            refused
        );
        assert_eq!(
            overriding("POST", "X-HTTP-Method-Override: GET\r\n", "_method=DELETE"),
            refused
        );
        assert_eq!(overriding("POST", "", "_method=DEL%45TE"), refused);
        assert_eq!(
            overriding("POST", "X-HTTP-Method: GET, DELETE\r\n", ""),
            refused
        );
    }
}
