//! Characters that some origin reads as ASCII. A path or a parameter name
//! spelled with them can mean `/admin` to the origin and something else to
//! a reader that compares bytes: IIS and ASP.NET "best fit" fullwidth forms
//! into ASCII, NFKC normalisation turns `ª`, `ⓐ`, `𝐚` and `ﬁ` into letters,
//! and case-insensitive comparisons by simple case mapping (ASP.NET's
//! `OrdinalIgnoreCase`, Java's `equalsIgnoreCase`) equate `ı` with `i`, `ſ`
//! with `s` and the Kelvin sign with `k`.
//!
//! Neighbours: [`super::path`] refuses such paths; [`super::source`] reads
//! query and cookie names through [`ascii_letter`].

use unicode_normalization::char::{decompose_canonical, decompose_compatible};

/// Look-alikes of `/`, `\` and `.` that have no compatibility decomposition,
/// but that "best fit" mappings still turn into the ASCII they resemble.
const UNDECOMPOSED_LOOKALIKES: [char; 5] = [
    '\u{2044}', // fraction slash
    '\u{2215}', // division slash
    '\u{2216}', // set minus
    '\u{29F5}', // reverse solidus operator
    '\u{29F8}', // big solidus
];

/// The ASCII character `c` reads as under simple case mapping, if any:
/// `ı` (U+0131) upper-cases to `I`, `K` (U+212A) lower-cases to `k`, `İ`
/// (U+0130) lower-cases to `i` plus a combining dot.
fn case_mapped(c: char) -> Option<char> {
    let mut upper = c.to_uppercase();
    if let (Some(single), None) = (upper.next(), upper.next())
        && single.is_ascii()
    {
        return Some(single);
    }
    c.to_lowercase().next().filter(char::is_ascii)
}

/// Whether `c`, not ASCII itself, is read as ASCII by some origin: by case
/// mapping, by a compatibility decomposition that yields ASCII its canonical
/// decomposition does not (`é` is `e` and an accent either way, and stays),
/// or as a look-alike of a separator.
pub(crate) fn reads_as_ascii(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    if case_mapped(c).is_some() || UNDECOMPOSED_LOOKALIKES.contains(&c) {
        return true;
    }
    let ascii_in = |decompose: fn(char, &mut dyn FnMut(char))| {
        let mut count = 0_usize;
        decompose(c, &mut |part| count += usize::from(part.is_ascii()));
        count
    };
    ascii_in(|c, emit| decompose_compatible(c, emit))
        > ascii_in(|c, emit| decompose_canonical(c, emit))
}

/// The one ASCII character some origin reads `c` as, for comparing names:
/// `c` itself when ASCII, else its simple case mapping or its compatibility
/// decomposition when that is one ASCII character (`ａ`, `ſ`, `K`).
pub(crate) fn ascii_letter(c: char) -> Option<u8> {
    if let Ok(byte) = u8::try_from(c)
        && byte.is_ascii()
    {
        return Some(byte);
    }
    if let Some(mapped) = case_mapped(c) {
        return u8::try_from(mapped).ok();
    }
    let mut parts = [None; 2];
    let mut count = 0;
    decompose_compatible(c, |part| {
        if let Some(slot) = parts.get_mut(count) {
            *slot = Some(part);
        }
        count += 1;
    });
    match (count, parts) {
        (1, [Some(part), _]) if part.is_ascii() => u8::try_from(part).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_origins_read_as_ascii() {
        for c in [
            'ı', 'ſ', '\u{212A}', 'İ', 'ª', 'ⓐ', '𝐚', 'ﬁ', '²', 'ⅰ', 'ａ', '／', '＼', '．', '‥',
            '․', '﹒', '﹨', '∕', '⁄',
        ] {
            assert!(reads_as_ascii(c), "{c:?} U+{:04X}", u32::from(c));
        }
        for c in ['a', '/', 'é', 'ß', 'ñ', 'Ж', '日', 'é', 'ü', '€', 'ø'] {
            assert!(!reads_as_ascii(c), "{c:?} U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn name_letters() {
        assert_eq!(ascii_letter('a'), Some(b'a'));
        assert_eq!(ascii_letter('ſ'), Some(b'S'));
        assert_eq!(ascii_letter('\u{212A}'), Some(b'k'));
        assert_eq!(ascii_letter('ｓ'), Some(b's'));
        assert_eq!(ascii_letter('ﬁ'), None);
        assert_eq!(ascii_letter('é'), None);
    }
}
