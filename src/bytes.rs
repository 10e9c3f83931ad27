//! Short byte copies of a fixed size, shared by the CSV decoder (values into Arrow text
//! columns) and the RECORD renderer (names and values into JSON lines).
//!
//! Both copy millions of values of a few to a few dozen bytes. A copy whose length is known only
//! at run time is a call to `memmove`; a copy of a constant size is a few vector moves inline.
//! Those calls, one or two per value, were a tenth of a wide RECORD read's CPU.

/// The bytes [`put_short`] copies as one fixed block.
pub const SHORT: usize = 32;

/// Appends the first `len` bytes of `src`. When `src` holds at least [`SHORT`] bytes and `len`
/// is no more, they are copied as one fixed-size block and the excess cut off again, so the
/// caller passes the rest of the buffer a value lies in, not just the value.
#[inline]
pub fn put_short(out: &mut Vec<u8>, len: usize, src: &[u8]) {
    match src.first_chunk::<SHORT>() {
        Some(block) if len <= SHORT => {
            let at = out.len();
            out.extend_from_slice(block);
            out.truncate(at + len);
        }
        _ => out.extend_from_slice(&src[..len]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_stops_at_its_length_whatever_follows() {
        let text = b"0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for len in 0..=text.len() {
            for extra in [0, 1, 7, SHORT - 1, SHORT, 40] {
                let src = &text[..(len + extra).min(text.len())];
                let mut out = b"prefix".to_vec();
                put_short(&mut out, len, src);
                assert_eq!(&out[6..], &text[..len], "{len} bytes, {extra} after");
            }
        }
    }
}
