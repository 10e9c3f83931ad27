//! Invalid UTF-8 in a stream of byte chunks is replaced by U+FFFD and counted, never dropped
//! silently and never fatal (Salesforce orgs hold data imported from anywhere).

/// Repairs UTF-8 across chunk boundaries.
#[derive(Debug, Default)]
pub struct Utf8Repair {
    carry: Vec<u8>,
    replaced: u64,
}

impl Utf8Repair {
    /// A repairer with nothing carried over.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the valid UTF-8 prefix of `carry + chunk`; an incomplete character at the end is
    /// kept for the next call. The common case (valid input, nothing carried) borrows.
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        if self.carry.is_empty() {
            match std::str::from_utf8(chunk) {
                Ok(_) => return Cow::Borrowed(chunk),
                Err(e) if e.error_len().is_none() => {
                    let (valid, rest) = chunk.split_at(e.valid_up_to());
                    if std::str::from_utf8(valid).is_ok() {
                        self.carry.extend_from_slice(rest);
                        return Cow::Borrowed(valid);
                    }
                }
                Err(_) => {}
            }
        }
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        Cow::Owned(self.repair(data, false))
    }

    /// Flushes what is carried (an incomplete character at the very end is invalid).
    pub fn finish(&mut self) -> Vec<u8> {
        let data = std::mem::take(&mut self.carry);
        self.repair(data, true)
    }

    /// How many invalid sequences were replaced so far.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    fn repair(&mut self, data: Vec<u8>, last: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut rest: &[u8] = &data;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.extend_from_slice(s.as_bytes());
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.extend_from_slice(valid);
                    match e.error_len() {
                        Some(n) => {
                            out.extend_from_slice("\u{FFFD}".as_bytes());
                            self.replaced += 1;
                            rest = &after[n..];
                        }
                        None if last => {
                            out.extend_from_slice("\u{FFFD}".as_bytes());
                            self.replaced += 1;
                            break;
                        }
                        None => {
                            self.carry.extend_from_slice(after);
                            break;
                        }
                    }
                }
            }
        }
        out
    }
}
