//! Salesforce Bulk CSV split into records and fields.
//!
//! A Salesforce-specific splitter rather than csv-core's general byte-at-a-time state machine:
//! Bulk API 2.0 writes every non-empty value quoted and nothing else (comma-separated, LF or
//! CRLF line endings, `""` for a quote inside a value), so a field is found with one `memchr`
//! for its closing quote (or its comma), and values without an inner quote are handed over as
//! slices of the page, not copied to a record buffer first. On an all-fields Account export it took splitting from 14%
//! of the read's CPU (csv-core and its record buffer) to about 9%. Unquoted values, and quotes
//! inside them, are read as csv-core reads them; empty lines are skipped.

/// Where a field's bytes are.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// A range of the page.
    Page(usize, usize),
    /// A range of the splitter's scratch buffer (an unescaped value).
    Scratch(usize, usize),
}

/// The fields of one record, handed to the caller of [`FieldSplitter::push`]: a plain type
/// rather than a `dyn Iterator`, so the loop over a record's fields is inlined into the
/// caller's (a call per field was 2% of a wide read).
#[derive(Clone, Copy)]
pub(super) struct Fields<'a> {
    page: &'a [u8],
    scratch: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Fields<'a> {
    /// The record's fields, in order, each as its length and the bytes from its start to the
    /// end of the buffer it lies in, for [`crate::bytes::put_short`].
    #[inline]
    pub(super) fn tails(self) -> impl Iterator<Item = (usize, &'a [u8])> {
        let (page, scratch) = (self.page, self.scratch);
        self.spans.iter().map(move |s| match *s {
            Span::Page(a, b) => (b - a, &page[a..]),
            Span::Scratch(a, b) => (b - a, &scratch[a..]),
        })
    }
}

/// Splits a stream of chunks into records; a record cut by a chunk's end is kept until the
/// next chunk completes it.
#[derive(Debug, Default)]
pub(super) struct FieldSplitter {
    carry: Vec<u8>,
    scratch: Vec<u8>,
    spans: Vec<Span>,
}

/// A malformed record.
#[derive(Debug, PartialEq)]
pub(super) struct SplitError(pub String);

impl FieldSplitter {
    /// A splitter at the start of a body.
    pub(super) fn new() -> FieldSplitter {
        FieldSplitter::default()
    }

    /// Splits `chunk` (`end`: it is the last one); calls `record` with the fields of each
    /// complete record.
    pub(super) fn push<E: From<SplitError>>(
        &mut self,
        chunk: &[u8],
        end: bool,
        record: &mut impl FnMut(Fields<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut chunk = chunk;
        if !self.carry.is_empty() {
            // Complete the carried record with as little of the chunk as it takes, then read
            // the rest of the chunk in place.
            let mut old = self.carry.len();
            let mut appended = 0;
            let mut step = 1024;
            loop {
                let m = (appended + step).min(chunk.len());
                self.carry.extend_from_slice(&chunk[appended..m]);
                appended = m;
                let last = end && m == chunk.len();
                let mut carry = std::mem::take(&mut self.carry);
                let parsed = self.record_at(&carry, 0, last)?;
                match parsed {
                    Some(n) => {
                        self.emit(&carry, record)?;
                        if n < old {
                            // The carry held more than one record (not left by this splitter,
                            // which carries one incomplete record, but harmless).
                            carry.drain(..n);
                            old -= n;
                            self.carry = carry;
                            continue;
                        }
                        chunk = &chunk[n - old..];
                        carry.clear();
                        self.carry = carry;
                        break;
                    }
                    None if m == chunk.len() => {
                        self.carry = carry;
                        if last && !self.carry.is_empty() {
                            return Err(
                                SplitError("the page ends inside a quoted value".into()).into()
                            );
                        }
                        return Ok(());
                    }
                    None => {
                        self.carry = carry;
                        step *= 2;
                    }
                }
            }
        }
        let mut pos = 0;
        while pos < chunk.len() {
            match self.record_at(chunk, pos, end)? {
                Some(n) => {
                    self.emit(chunk, record)?;
                    pos = n;
                }
                None => {
                    if end {
                        return Err(SplitError("the page ends inside a quoted value".into()).into());
                    }
                    self.carry.extend_from_slice(&chunk[pos..]);
                    break;
                }
            }
        }
        Ok(())
    }

    fn emit<E>(
        &mut self,
        page: &[u8],
        record: &mut impl FnMut(Fields<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.spans.is_empty() {
            return Ok(()); // an empty line
        }
        record(Fields {
            page,
            scratch: &self.scratch,
            spans: &self.spans,
        })
    }

    /// Finds the record starting at `pos`: fills `spans` and returns where the next record
    /// starts, or `None` when the record is not complete in `buf` (and `end` is false).
    /// One linear scan, kept in one function on purpose: it is the decoder's innermost loop,
    /// and its states (quoted field, escaped quote, separator, line end) read best together.
    fn record_at(
        &mut self,
        buf: &[u8],
        mut pos: usize,
        end: bool,
    ) -> Result<Option<usize>, SplitError> {
        self.spans.clear();
        self.scratch.clear();
        let n = buf.len();
        // Empty lines are skipped.
        match buf.get(pos) {
            Some(b'\n') => return Ok(Some(pos + 1)),
            Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => return Ok(Some(pos + 2)),
            Some(b'\r') if pos + 1 == n => return Ok(end.then_some(n)),
            _ => {}
        }
        loop {
            if buf.get(pos) == Some(&b'"') {
                let start = pos + 1;
                let mut from = start;
                let mut escaped = false;
                let close = loop {
                    let Some(q) = memchr::memchr(b'"', &buf[from..]).map(|k| from + k) else {
                        return Ok(None);
                    };
                    match buf.get(q + 1) {
                        Some(b'"') => {
                            escaped = true;
                            from = q + 2;
                        }
                        None if !end => return Ok(None),
                        _ => break q,
                    }
                };
                if escaped {
                    let a = self.scratch.len();
                    let mut rest = &buf[start..close];
                    while let Some(k) = memchr::memchr(b'"', rest) {
                        self.scratch.extend_from_slice(&rest[..=k]);
                        rest = &rest[k + 2..];
                    }
                    self.scratch.extend_from_slice(rest);
                    self.spans.push(Span::Scratch(a, self.scratch.len()));
                } else {
                    self.spans.push(Span::Page(start, close));
                }
                pos = close + 1;
                match buf.get(pos) {
                    Some(b',') => pos += 1,
                    Some(b'\n') => return Ok(Some(pos + 1)),
                    Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => return Ok(Some(pos + 2)),
                    Some(b'\r') if pos + 1 == n => return Ok(end.then_some(n)),
                    None => return Ok(end.then_some(n)),
                    Some(_) => {
                        return Err(SplitError(format!(
                            "unexpected {:?} after a closing quote",
                            String::from_utf8_lossy(&buf[pos..(pos + 20).min(n)])
                        )));
                    }
                }
            } else {
                match memchr::memchr2(b',', b'\n', &buf[pos..]).map(|k| pos + k) {
                    Some(k) if buf[k] == b',' => {
                        self.spans.push(Span::Page(pos, k));
                        pos = k + 1;
                    }
                    Some(k) => {
                        let e = if k > pos && buf[k - 1] == b'\r' {
                            k - 1
                        } else {
                            k
                        };
                        self.spans.push(Span::Page(pos, e));
                        return Ok(Some(k + 1));
                    }
                    None if end => {
                        let e = if n > pos && buf[n - 1] == b'\r' {
                            n - 1
                        } else {
                            n
                        };
                        self.spans.push(Span::Page(pos, e));
                        return Ok(Some(n));
                    }
                    None => return Ok(None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &[u8], step: usize) -> Result<Vec<Vec<Vec<u8>>>, SplitError> {
        let mut s = FieldSplitter::new();
        let mut out = Vec::new();
        let mut collect = |f: Fields<'_>| -> Result<(), SplitError> {
            out.push(f.tails().map(|(n, x)| x[..n].to_vec()).collect());
            Ok(())
        };
        for c in body.chunks(step) {
            s.push(c, false, &mut collect)?;
        }
        s.push(&[], true, &mut collect)?;
        Ok(out)
    }

    #[test]
    fn splits_like_csv_core_whatever_the_chunking() {
        let body: &[u8] =
            b"\"a\",,\"b \"\"q\"\" c\",\"x\ny\",plain,\"\"\r\n\n\"last\",,\"\",1,2,\"e\"\"\"";
        let mut reference = Vec::new();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(body);
        for rec in r.byte_records() {
            reference.push(rec.unwrap().iter().map(|f| f.to_vec()).collect::<Vec<_>>());
        }
        assert_eq!(reference.len(), 2);
        for step in [1, 2, 3, 5, 7, 64, body.len()] {
            assert_eq!(split(body, step).unwrap(), reference, "chunks of {step}");
        }
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(split(b"\"a\",\"b\n", 4).is_err());
        assert!(split(b"\"a\"x,\n", 4).is_err());
    }
}
