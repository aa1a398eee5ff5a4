//! `http::request::ChunkedDecoder` over arbitrary bodies, fed as they might
//! arrive (the first byte picks the body limit, the second how many reads,
//! the next bytes how long each is), checked against the same decoder given
//! the whole body at once: where the body ends, whether it is complete, how
//! many bytes it announced, and what `decode_in_place` keeps, must not
//! depend on how the bytes were split.
#![no_main]

use jwtgate::internals::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

/// Where the body ended (bytes consumed) and whether it is complete, or `None`
/// if it was refused; and the bytes it announced.
type Outcome = (Option<(usize, bool)>, u64);

fn whole(max: u64, body: &[u8]) -> Outcome {
    let mut decoder = ChunkedDecoder::new(max);
    (decoder.skip(body).ok(), decoder.decoded())
}

fn split(max: u64, body: &[u8], ends: impl Iterator<Item = usize>) -> Outcome {
    let mut decoder = ChunkedDecoder::new(max);
    let mut read = 0;
    for end in ends {
        // Every byte not consumed yet is given again with the new ones.
        match decoder.skip(&body[read..end]) {
            Ok((consumed, done)) => {
                read += consumed;
                if done {
                    return (Some((read, true)), decoder.decoded());
                }
            }
            Err(_) => return (None, decoder.decoded()),
        }
    }
    (Some((read, false)), decoder.decoded())
}

fuzz_target!(|data: &[u8]| {
    let [limit, reads, rest @ ..] = data else {
        return;
    };
    let max = match limit {
        255 => u64::MAX,
        n => u64::from(*n) * 16,
    };
    let reads = usize::from(reads % 16) + 1;
    let (lengths, body) = rest.split_at(reads.min(rest.len()));
    let expected = whole(max, body);
    let mut end = 0;
    let ends = lengths
        .iter()
        .map(|&length| {
            end = (end + usize::from(length)).min(body.len());
            end
        })
        .chain([body.len()]);
    let got = split(max, body, ends);
    match (expected.0, got.0) {
        // A refusal may come at a different read, with fewer bytes announced.
        (None, None) => {}
        _ => assert_eq!(got, expected, "split differs from whole"),
    }
    // In place, keeping the data: the data kept is what the size lines announced.
    let mut buf = body.to_vec();
    let mut decoder = ChunkedDecoder::new(max);
    if let Ok(in_place) = decoder.decode_in_place(&mut buf, 0, 0, true) {
        assert!(in_place.write <= in_place.read && in_place.read <= body.len());
        assert_eq!(Some((in_place.read, in_place.done)), expected.0);
        if in_place.done {
            assert_eq!(in_place.write as u64, decoder.decoded());
        }
    }
});
