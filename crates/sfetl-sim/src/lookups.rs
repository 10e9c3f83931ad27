//! Lookups a deletion clears and an undelete puts back. A lookup whose relationship neither
//! cascades nor restricts the delete (the parent's describe: `childRelationships[]` with
//! `cascadeDelete` and `restrictedDelete` both false, as Account.ParentId, Contact.ReportsToId
//! or Score__c.Contact__c) is set to null in every live record pointing at a deleted record:
//! Salesforce's default "Clear the value of this field". Undeleting the record restores those
//! values (Apex Developer Guide, "Referential Integrity When Deleting and Restoring Records").
//! The child's SystemModstamp and LastModifiedDate do not move either way (*modelled*: nothing
//! documented says they do), so a read by SystemModstamp never sees the change.

use std::collections::{HashMap, HashSet};

use super::cascade::ChildRelationship;
use super::store::{LIVE, Store, Val, pack, unpack};

impl Store {
    /// The relationships of `obj` whose lookups a deletion of one of its records clears.
    fn clearing(&self, obj: usize) -> Vec<ChildRelationship> {
        self.child_relationships(obj, |r| {
            r["cascadeDelete"] != true && r["restrictedDelete"] != true
        })
    }

    /// Clears, in every live record, the lookups pointing at one of `deleted` (packed) through
    /// a relationship that neither cascades nor restricts, leaving the record's timestamps as
    /// they were; remembers each cleared value for an undelete unless the deletion was `hard`.
    /// Returns how many lookups were cleared.
    pub fn clear_lookups(&mut self, deleted: &[u64], hard: bool) -> usize {
        let mut by_obj: HashMap<usize, HashSet<u64>> = HashMap::new();
        for &p in deleted {
            by_obj.entry(unpack(p).0).or_default().insert(p);
        }
        let mut objs: Vec<usize> = by_obj.keys().copied().collect();
        objs.sort_unstable();
        let mut n = 0;
        for obj in objs {
            let gone = &by_obj[&obj];
            for c in self.clearing(obj) {
                let t = &mut self.tables[c.child];
                for r in 0..t.len() {
                    let Val::Ref(p) = t.get(r, c.field) else {
                        continue;
                    };
                    if t.state[r] != LIVE || !gone.contains(&p) {
                        continue;
                    }
                    t.set(r, c.field, &Val::Null);
                    n += 1;
                    if !hard {
                        self.cleared
                            .entry(p)
                            .or_default()
                            .push((pack(c.child, r), c.field));
                    }
                }
            }
        }
        n
    }

    /// Puts back the lookups the deletion of `restored` (packed, just undeleted) cleared, in
    /// each record whose field is still null (one set since keeps its new value: *modelled*).
    /// Returns how many were restored.
    pub fn restore_lookups(&mut self, restored: &[u64]) -> usize {
        let mut n = 0;
        for &p in restored {
            for (child, field) in self.cleared.remove(&p).unwrap_or_default() {
                let (o, r) = unpack(child);
                let t = &mut self.tables[o];
                if t.get(r, field).is_null() {
                    t.set(r, field, &Val::Ref(p));
                    n += 1;
                }
            }
        }
        n
    }
}
