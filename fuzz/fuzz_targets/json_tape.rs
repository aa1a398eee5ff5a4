//! The engine's strict JSON parser (`Tape`) over arbitrary bytes. Every
//! value of an accepted document is walked through the public views, and a
//! document it accepts must also be JSON to a lenient parser (serde_json):
//! strict may refuse more, never less.
#![no_main]

use jwtgate_engine::internals::json::{MAX_DEPTH_CAP, Tape, Value};
use libfuzzer_sys::fuzz_target;

fn walk(value: Value<'_>, depth: usize) -> usize {
    assert!(depth <= MAX_DEPTH_CAP + 1);
    let _ = (
        value.kind(),
        value.raw_json(),
        value.as_bool(),
        value.as_f64(),
        value.is_null(),
    );
    if let Some(string) = value.as_str() {
        let unescaped = string.to_cow();
        assert_eq!(unescaped.chars().count(), string.chars().count());
        assert!(string.starts_with(&unescaped));
        let _ = string.short_key();
        return 1;
    }
    if let Some(object) = value.as_object() {
        let mut n = 1;
        for (name, member) in object.members() {
            assert!(
                object.get(&name.to_cow()).is_some(),
                "member {name:?} not found by name"
            );
            n += walk(member, depth + 1);
        }
        assert_eq!(object.len(), object.members().count());
        return n;
    }
    if let Some(array) = value.as_array() {
        return 1 + array
            .iter()
            .map(|element| walk(element, depth + 1))
            .sum::<usize>();
    }
    1
}

fuzz_target!(|data: &[u8]| {
    let Some((&depth, text)) = data.split_first() else {
        return;
    };
    let mut tape = Tape::new();
    let Ok(root) = tape.parse(text, usize::from(depth % 80)) else {
        return;
    };
    walk(root, 0);
    if let Err(error) = serde_json::from_slice::<serde_json::Value>(text) {
        panic!("accepted by the strict parser, refused by serde_json: {error}");
    }
});
