//! Sets of record Ids held in 16 bytes each, for comparing every Id of an export with every Id
//! of the org.
//!
//! A reconciliation (`reconcile_deletes`, rows leaving a filter as days pass) holds all the Ids
//! of an object twice. As `HashSet<String>`s they took about 90 bytes each (the string's own
//! allocation and header, the table's slot and its spare room), so 10M Accounts asked for
//! close to 2 GB. An 18-character Salesforce Id is letters and digits, 6 bits a character:
//! 108 bits, packed here into a `u128` whose order is the text's. A set is a sorted vector of
//! them, and the difference of two sets one merge of both. Anything else (a 15-character Id
//! of a mapped column, a value that is no Id) is kept as text beside them, so nothing is lost.

/// Characters of the Ids packed (the 18-character form every API answers with).
const ID_LEN: usize = 18;

/// Ids being collected, in any order and with repeats; [`IdCollector::finish`] makes the set.
#[derive(Debug, Default)]
pub struct IdCollector {
    packed: Vec<u128>,
    other: Vec<String>,
}

impl IdCollector {
    /// Adds `id` (repeats are dropped by [`IdCollector::finish`]).
    pub fn push(&mut self, id: &str) {
        match pack(id) {
            Some(p) => self.packed.push(p),
            None => self.other.push(id.to_string()),
        }
    }

    /// The set of the Ids pushed.
    pub fn finish(mut self) -> IdSet {
        self.packed.sort_unstable();
        self.packed.dedup();
        self.packed.shrink_to_fit();
        self.other.sort_unstable();
        self.other.dedup();
        IdSet {
            packed: self.packed,
            other: self.other,
        }
    }
}

/// A set of Ids, sorted (see the module's doc).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdSet {
    packed: Vec<u128>,
    other: Vec<String>,
}

impl IdSet {
    /// How many Ids.
    pub fn len(&self) -> usize {
        self.packed.len() + self.other.len()
    }

    /// Whether the set holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &str) -> bool {
        match pack(id) {
            Some(p) => self.packed.binary_search(&p).is_ok(),
            None => self.other.binary_search_by(|o| o.as_str().cmp(id)).is_ok(),
        }
    }

    /// The Ids of this set that `other` lacks, in text order.
    pub fn minus(&self, other: &IdSet) -> Vec<String> {
        let mut out = Vec::new();
        let mut theirs = other.packed.iter().peekable();
        for &p in &self.packed {
            while theirs.next_if(|&&t| t < p).is_some() {}
            if theirs.peek() != Some(&&p) {
                out.push(unpack(p));
            }
        }
        out.extend(
            self.other
                .iter()
                .filter(|id| other.other.binary_search(id).is_err())
                .cloned(),
        );
        out.sort_unstable();
        out
    }
}

impl FromIterator<String> for IdSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> IdSet {
        let mut c = IdCollector::default();
        iter.into_iter().for_each(|id| c.push(&id));
        c.finish()
    }
}

/// The 6-bit code of an Id's character, in ASCII order (digits, capitals, small letters).
fn code(b: u8) -> Option<u128> {
    let c = match b {
        b'0'..=b'9' => b - b'0',
        b'A'..=b'Z' => b - b'A' + 10,
        b'a'..=b'z' => b - b'a' + 36,
        _ => return None,
    };
    Some(u128::from(c))
}

/// `id` as 18 codes, the first in the highest bits, so that packed Ids sort as their text.
fn pack(id: &str) -> Option<u128> {
    let bytes = id.as_bytes();
    if bytes.len() != ID_LEN {
        return None;
    }
    bytes
        .iter()
        .try_fold(0u128, |acc, &b| Some(acc << 6 | code(b)?))
}

/// The text of a packed Id.
fn unpack(mut p: u128) -> String {
    let mut bytes = [0u8; ID_LEN];
    for b in bytes.iter_mut().rev() {
        let c = (p & 63) as u8;
        *b = match c {
            0..=9 => b'0' + c,
            10..=35 => b'A' + c - 10,
            _ => b'a' + c - 36,
        };
        p >>= 6;
    }
    bytes.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed Ids compare as their text does (what [`IdSet::minus`]'s merge relies on).
    fn same_order(a: &str, b: &str) -> bool {
        pack(a).unwrap().cmp(&pack(b).unwrap()) == a.cmp(b)
    }

    #[test]
    fn ids_round_trip_and_sort_as_text() {
        let ids = [
            "001000000000000AAA",
            "0015g0000000Q0uAAE",
            "0015g0000000Q0vAAE",
            "003Zz9999999999zzz",
            "a0B5g00000AbCdEFGH",
            "zzzzzzzzzzzzzzzzzz",
        ];
        for a in ids {
            assert_eq!(unpack(pack(a).unwrap()), a);
            for b in ids {
                assert!(same_order(a, b), "{a} {b}");
            }
        }
        assert_eq!(
            pack("001000000000000"),
            None,
            "15 characters are kept as text"
        );
        assert_eq!(pack("001000000000000AA-"), None);
        assert_eq!(pack("0010000000000ÄAAA"), None);
    }

    #[test]
    fn the_difference_of_two_sets_is_exact_whatever_the_order_and_repeats() {
        let held: IdSet = [
            "0015g0000000Q0vAAE",
            "0015g0000000Q0uAAE",
            "0015g0000000Q0uAAE",
            "001000000000001",
            "not an id",
            "0015g0000000Q0zAAE",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let live: IdSet = ["0015g0000000Q0zAAE", "0015g0000000Q0vAAE", "not an id", "x"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(held.len(), 5);
        assert_eq!(live.len(), 4);
        assert_eq!(held.minus(&live), ["001000000000001", "0015g0000000Q0uAAE"]);
        assert_eq!(live.minus(&held), ["x"]);
        assert!(held.contains("0015g0000000Q0uAAE") && held.contains("not an id"));
        assert!(!held.contains("0015g0000000Q0wAAE"));
        assert!(IdSet::default().is_empty());
        assert_eq!(IdSet::default().minus(&held), Vec::<String>::new());
        assert_eq!(held.minus(&IdSet::default()).len(), 5);
    }
}
