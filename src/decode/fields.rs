//! Salesforce Bulk CSV split into records and fields.
//!
//! A Salesforce-specific splitter rather than csv-core's general byte-at-a-time state machine:
//! Bulk API 2.0 writes every non-empty value quoted and nothing else (comma-separated, LF or
//! CRLF line endings, `""` for a quote inside a value), and values without an inner quote are
//! handed over as slices of the page, not copied to a record buffer first. A record is first
//! tried 64 bytes at a time ([`super::blocks`]); what that path gives back is read here, a
//! field at a time: one `memchr` for its closing quote (or its comma). Unquoted values, and
//! quotes inside them, are read as csv-core reads them; empty lines are skipped.
//!
//! On an all-fields Account export, csv-core and its record buffer were 14% of the read's
//! instructions; the field-at-a-time search about 15% of a leaner read; the blocks about 10%.

/// Where a field's bytes are: a range of the page, or of the splitter's scratch buffer (an
/// unescaped value) when the start has [`Span::SCRATCH`] set. Two words, not an enum's three:
/// a wide row writes some 45 of them, and the decoder reads each back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The flag of a scratch range, in the start's top bit (no buffer is that large).
    const SCRATCH: usize = 1 << (usize::BITS - 1);

    /// `page[start..end]`.
    #[inline(always)]
    pub(super) fn page(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// `scratch[start..end]`.
    #[inline(always)]
    pub(super) fn scratch(start: usize, end: usize) -> Span {
        Span {
            start: start | Span::SCRATCH,
            end,
        }
    }

    /// The field's length.
    #[inline(always)]
    fn len(self) -> usize {
        self.end - (self.start & !Span::SCRATCH)
    }

    /// Whether the range is of the scratch buffer, and the range.
    #[cfg(test)]
    pub(super) fn parts(self) -> (bool, std::ops::Range<usize>) {
        let scratch = self.start & Span::SCRATCH != 0;
        (scratch, self.start & !Span::SCRATCH..self.end)
    }
}

/// Appends the text of a quoted value (`inner`, between its quotes) to `scratch`, each `""`
/// made one `"`, and returns where it lies there; `None`, with `scratch` as it was, when a
/// quote in it is not one of such a pair. Both splitters unescape through here.
pub(super) fn unescape(inner: &[u8], scratch: &mut Vec<u8>) -> Option<Span> {
    let kept = scratch.len();
    let mut rest = inner;
    while let Some(k) = memchr::memchr(b'"', rest) {
        if rest.get(k + 1) != Some(&b'"') {
            scratch.truncate(kept);
            return None;
        }
        scratch.extend_from_slice(&rest[..=k]);
        rest = &rest[k + 2..];
    }
    scratch.extend_from_slice(rest);
    Some(Span::scratch(kept, scratch.len()))
}

/// Records split from one buffer, handed to the caller of [`FieldSplitter::push`] up to
/// [`TILE_RECORDS`] at a time, so that the caller can move them into columns column by column
/// (one column's type matched once per tile, not once per field). A plain type rather than a
/// `dyn Iterator`, so the loops over fields are inlined into the caller's.
#[derive(Clone, Copy)]
pub(super) struct Records<'a> {
    page: &'a [u8],
    scratch: &'a [u8],
    spans: &'a [Span],
    /// Where each record's spans end in `spans`.
    ends: &'a [usize],
    /// The bytes the records take in `page`: no less than their text.
    page_bytes: usize,
}

impl<'a> Records<'a> {
    /// How many records.
    #[inline]
    pub(super) fn len(self) -> usize {
        self.ends.len()
    }

    /// Record `r`'s fields as a range of field numbers for [`Records::field`].
    #[inline]
    pub(super) fn fields(self, r: usize) -> std::ops::Range<usize> {
        let start = if r == 0 { 0 } else { self.ends[r - 1] };
        start..self.ends[r]
    }

    /// Field `i` (numbered across the records) as its length and the bytes from its start to
    /// the end of the buffer it lies in, for [`crate::bytes::put_short`].
    #[inline]
    pub(super) fn field(self, i: usize) -> (usize, &'a [u8]) {
        let span = self.spans[i];
        if span.start & Span::SCRATCH == 0 {
            (span.len(), &self.page[span.start..])
        } else {
            (span.len(), &self.scratch[span.start & !Span::SCRATCH..])
        }
    }

    /// At least the bytes of field text of all the records (their extent in the page, quotes
    /// and separators included): the caller's cheap bound before counting record by record.
    #[inline]
    pub(super) fn page_bytes(self) -> usize {
        self.page_bytes
    }

    /// The bytes of field text of record `r`.
    #[inline]
    pub(super) fn text_bytes(self, r: usize) -> usize {
        self.spans[self.fields(r)].iter().map(|s| s.len()).sum()
    }
}

/// Records handed over at once at most: the tile the RECORD renderer measured best with (32 to
/// 64 rows alike), and 32 records of 45 fields keep their spans (35 KB) in the first caches.
pub(super) const TILE_RECORDS: usize = 32;

/// Splits a stream of chunks into records; a record cut by a chunk's end is kept until the
/// next chunk completes it.
#[derive(Debug, Default)]
pub(super) struct FieldSplitter {
    carry: Vec<u8>,
    scratch: Vec<u8>,
    spans: Vec<Span>,
    ends: Vec<usize>,
}

/// A malformed record.
#[derive(Debug, PartialEq)]
pub(super) struct SplitError(pub String);

impl FieldSplitter {
    /// A splitter at the start of a body.
    pub(super) fn new() -> FieldSplitter {
        FieldSplitter::default()
    }

    /// Splits `chunk` (`end`: it is the last one); calls `records` with the complete records,
    /// in order, a tile at a time.
    pub(super) fn push<E: From<SplitError>>(
        &mut self,
        chunk: &[u8],
        end: bool,
        records: &mut impl FnMut(Records<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut chunk = chunk;
        if !self.carry.is_empty() {
            match self.complete_carry(chunk, end, records)? {
                Some(used) => chunk = &chunk[used..],
                None => return Ok(()),
            }
        }
        let mut pos = 0;
        // Where the records being gathered start in the chunk.
        let mut from = 0;
        self.clear();
        while pos < chunk.len() {
            match self.next_record(chunk, pos, end)? {
                Some(n) => {
                    pos = n;
                    if self.ends.len() == TILE_RECORDS {
                        self.emit(chunk, pos - from, records)?;
                        self.clear();
                        from = pos;
                    }
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
        self.emit(chunk, pos - from, records)
    }

    /// [`FieldSplitter::record_at`], then the record counted in `ends` (an empty line is not
    /// one), or, when it is not complete, its fields so far dropped (they are found again with
    /// its rest).
    fn next_record(
        &mut self,
        buf: &[u8],
        pos: usize,
        end: bool,
    ) -> Result<Option<usize>, SplitError> {
        let (spans, scratch) = (self.spans.len(), self.scratch.len());
        let next = self.record_at(buf, pos, end);
        match next {
            Ok(Some(_)) if self.spans.len() > spans => self.ends.push(self.spans.len()),
            Ok(Some(_)) => {}
            _ => {
                self.spans.truncate(spans);
                self.scratch.truncate(scratch);
            }
        }
        next
    }

    /// Completes the carried record with as little of `chunk` as it takes and hands it over;
    /// returns how much of `chunk` it took, or None when all of it went into the carry (the
    /// record goes on past it).
    fn complete_carry<E: From<SplitError>>(
        &mut self,
        chunk: &[u8],
        end: bool,
        records: &mut impl FnMut(Records<'_>) -> Result<(), E>,
    ) -> Result<Option<usize>, E> {
        let mut old = self.carry.len();
        let mut appended = 0;
        let mut step = 1024;
        loop {
            let m = (appended + step).min(chunk.len());
            self.carry.extend_from_slice(&chunk[appended..m]);
            appended = m;
            let last = end && m == chunk.len();
            let mut carry = std::mem::take(&mut self.carry);
            self.clear();
            let parsed = self.next_record(&carry, 0, last)?;
            match parsed {
                Some(n) => {
                    self.emit(&carry, n, records)?;
                    if n < old {
                        // The carry held more than one record (not left by this splitter,
                        // which carries one incomplete record, but harmless).
                        carry.drain(..n);
                        old -= n;
                        self.carry = carry;
                        continue;
                    }
                    carry.clear();
                    self.carry = carry;
                    return Ok(Some(n - old));
                }
                None if m == chunk.len() => {
                    self.carry = carry;
                    if last && !self.carry.is_empty() {
                        return Err(SplitError("the page ends inside a quoted value".into()).into());
                    }
                    return Ok(None);
                }
                None => {
                    self.carry = carry;
                    step *= 2;
                }
            }
        }
    }

    /// Forgets the records handed over.
    fn clear(&mut self) {
        self.spans.clear();
        self.scratch.clear();
        self.ends.clear();
    }

    /// Hands over the records split so far (none for empty lines only).
    fn emit<E>(
        &mut self,
        page: &[u8],
        page_bytes: usize,
        records: &mut impl FnMut(Records<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.ends.is_empty() {
            return Ok(());
        }
        records(Records {
            page,
            scratch: &self.scratch,
            spans: &self.spans,
            ends: &self.ends,
            page_bytes,
        })
    }

    /// Finds the record starting at `pos`: appends its fields to `spans` and returns where the
    /// next record starts, or `None` when the record is not complete in `buf` (and `end` is
    /// false).
    /// One linear scan, kept in one function on purpose: it is the decoder's innermost loop,
    /// and its states (quoted field, escaped quote, separator, line end) read best together.
    fn record_at(
        &mut self,
        buf: &[u8],
        mut pos: usize,
        end: bool,
    ) -> Result<Option<usize>, SplitError> {
        let n = buf.len();
        // Empty lines are skipped.
        match buf.get(pos) {
            Some(b'\n') => return Ok(Some(pos + 1)),
            Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => return Ok(Some(pos + 2)),
            Some(b'\r') if pos + 1 == n => return Ok(end.then_some(n)),
            _ => {}
        }
        if let Some(next) = super::blocks::record(buf, pos, &mut self.spans, &mut self.scratch) {
            return Ok(Some(next));
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
                    let span = unescape(&buf[start..close], &mut self.scratch)
                        .expect("every inner quote was found paired above");
                    self.spans.push(span);
                } else {
                    self.spans.push(Span::page(start, close));
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
                        self.spans.push(Span::page(pos, k));
                        pos = k + 1;
                    }
                    Some(k) => {
                        let e = if k > pos && buf[k - 1] == b'\r' {
                            k - 1
                        } else {
                            k
                        };
                        self.spans.push(Span::page(pos, e));
                        return Ok(Some(k + 1));
                    }
                    None if end => {
                        let e = if n > pos && buf[n - 1] == b'\r' {
                            n - 1
                        } else {
                            n
                        };
                        self.spans.push(Span::page(pos, e));
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
        let mut collect = |f: Records<'_>| -> Result<(), SplitError> {
            assert!(f.len() <= TILE_RECORDS);
            for r in 0..f.len() {
                let fields = f.fields(r).map(|i| f.field(i));
                out.push(fields.map(|(n, x)| x[..n].to_vec()).collect());
            }
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
    fn many_records_come_in_tiles_in_order_whatever_the_chunking() {
        let mut body = Vec::new();
        for i in 0..(3 * TILE_RECORDS + 5) {
            match i % 4 {
                0 => body.extend_from_slice(format!("\"{i}\",\"x \"\"{i}\"\"\",\r\n").as_bytes()),
                1 => body.extend_from_slice(format!("{i},\"a,b\n\",\"\"\n\n").as_bytes()),
                _ => body.extend_from_slice(format!("\"{i}\",,\"{}\"\n", "y".repeat(i)).as_bytes()),
            }
        }
        let mut reference = Vec::new();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&body[..]);
        for rec in r.byte_records() {
            reference.push(rec.unwrap().iter().map(|f| f.to_vec()).collect::<Vec<_>>());
        }
        assert_eq!(reference.len(), 3 * TILE_RECORDS + 5);
        for step in [1, 7, 100, 1000, body.len()] {
            assert_eq!(split(&body, step).unwrap(), reference, "chunks of {step}");
        }
    }

    /// Salesforce-shaped records (quoted values with escaped quotes, line breaks and commas
    /// inside, empty values, CRLF) and the odd shapes the fast path gives back (a quote inside
    /// an unquoted value, unquoted numbers), long enough to span several 64-byte blocks.
    fn generated_body(seed: u64) -> Vec<u8> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let pieces: [&[u8]; 8] = [
            b"abc",
            b"\"\"",
            b",",
            b"\n",
            b"\r\n",
            b"x y z 0123",
            b"\xc3\xa9",
            b"\r",
        ];
        let mut body = Vec::new();
        for _ in 0..rng.random_range(1..40) {
            for f in 0..rng.random_range(1..30) {
                if f > 0 {
                    body.push(b',');
                }
                match rng.random_range(0..10) {
                    0..=1 => {}
                    2 => body.extend_from_slice(format!("{}", rng.random::<u32>()).as_bytes()),
                    3 if rng.random_range(0..20) == 0 => body.extend_from_slice(b"5\"x"),
                    _ => {
                        body.push(b'"');
                        for _ in 0..rng.random_range(0..12) {
                            body.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
                        }
                        body.push(b'"');
                    }
                }
            }
            let crlf = rng.random_range(0..8) == 0;
            body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        body
    }

    #[test]
    fn generated_records_split_like_csv_core_whatever_the_chunking() {
        for seed in 0..300 {
            let body = generated_body(seed);
            let mut reference = Vec::new();
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&body[..]);
            for rec in r.byte_records() {
                reference.push(rec.unwrap().iter().map(|f| f.to_vec()).collect::<Vec<_>>());
            }
            for step in [7, 61, 64, 200, body.len().max(1)] {
                assert_eq!(
                    split(&body, step).unwrap(),
                    reference,
                    "seed {seed}, chunks of {step}"
                );
            }
        }
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(split(b"\"a\",\"b\n", 4).is_err());
        assert!(split(b"\"a\"x,\n", 4).is_err());
    }
}
