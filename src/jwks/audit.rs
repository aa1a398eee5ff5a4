//! What changed between the key set in force and a freshly fetched one, in
//! words for the log: every rotation is an event an operator may have to
//! explain later (a key that appeared unannounced is how a compromised IdP
//! shows itself).

use std::collections::BTreeMap;

use jwtgate_engine::internals::json::Tape;

use crate::KeySet;

/// One line per change; empty when the sets hold the same keys.
pub(super) fn changes(old: Option<&KeySet>, new: &KeySet, body: &[u8]) -> Vec<String> {
    let describe = |set: &KeySet| -> BTreeMap<String, String> {
        set.keys()
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let name = key.kid().map_or_else(
                    || format!("key #{index} (no kid)"),
                    |kid| format!("kid {kid:?}"),
                );
                (name, key.describe())
            })
            .collect()
    };
    let before = old.map(describe).unwrap_or_default();
    let after = describe(new);
    let mut lines = Vec::new();
    for (name, description) in &after {
        match before.get(name) {
            None => lines.push(format!("added {description}")),
            Some(previous) if previous != description => {
                // The descriptions start with the name; say it once.
                let bare = |text: &'_ str| -> String {
                    text.strip_prefix(name.as_str())
                        .and_then(|rest| rest.strip_prefix(": "))
                        .unwrap_or(text)
                        .to_owned()
                };
                lines.push(format!(
                    "changed {name}: {} -> {}",
                    bare(previous),
                    bare(description)
                ));
            }
            Some(_) => {}
        }
    }
    for (name, description) in &before {
        if !after.contains_key(name) {
            lines.push(format!("removed {description}"));
        }
    }
    if lines.is_empty() {
        return lines;
    }
    for warning in new.warnings() {
        lines.push(format!("dropped as unusable: {warning}"));
    }
    for kid in without_alg(body) {
        lines.push(format!(
            "{kid} has no \"alg\": its algorithm is inferred from the key type"
        ));
    }
    lines
}

/// The keys of a JWKS document that carry no `alg` member.
fn without_alg(body: &[u8]) -> Vec<String> {
    let mut tape = Tape::new();
    let Ok(document) = tape.parse(body, 16) else {
        return Vec::new();
    };
    let Some(keys) = document
        .as_object()
        .and_then(|object| object.get("keys"))
        .and_then(|keys| keys.as_array())
    else {
        return Vec::new();
    };
    keys.iter()
        .enumerate()
        .filter_map(|(index, key)| {
            let key = key.as_object()?;
            if key.get("alg").is_some() {
                return None;
            }
            Some(key.get("kid").and_then(|kid| kid.as_str()).map_or_else(
                || format!("key #{index}"),
                |kid| format!("kid {:?}", kid.to_cow()),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_are_described() {
        let one = crate::demo::DEMO_JWKS.as_bytes();
        let old = KeySet::parse(one).unwrap();
        let first = old.keys().first().unwrap().kid().unwrap().to_owned();
        // The same set without its first key, and that key with no alg.
        let mut tape = Tape::new();
        let document = tape.parse(one, 16).unwrap();
        let keys: Vec<&str> = document
            .as_object()
            .unwrap()
            .get("keys")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key.raw_json())
            .collect();
        let rest = format!(r#"{{"keys":[{}]}}"#, keys[1..].join(","));
        let fewer = KeySet::parse(rest.as_bytes()).unwrap();
        let removed = changes(Some(&old), &fewer, rest.as_bytes());
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(
            removed[0].starts_with(&format!("removed kid {first:?}")),
            "{removed:?}"
        );
        let added = changes(Some(&fewer), &old, one);
        assert_eq!(added.len(), 1, "{added:?}");
        assert!(
            added[0].starts_with(&format!("added kid {first:?}")),
            "{added:?}"
        );
        assert!(changes(Some(&old), &old, one).is_empty());
        let first_time = changes(None, &old, one);
        assert_eq!(first_time.len(), old.keys().len());
        let no_alg = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let set = KeySet::parse(no_alg.as_bytes()).unwrap();
        let lines = changes(None, &set, no_alg.as_bytes());
        assert!(
            lines.iter().any(|l| l.contains("kid \"e\" has no \"alg\"")),
            "{lines:?}"
        );
    }
}
