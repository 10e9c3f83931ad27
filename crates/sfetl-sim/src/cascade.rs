//! Deletions that take children with them. Deleting an Account moves its Contacts,
//! Opportunities, Tasks (by `WhatId`) and Attachments to the recycle bin too, each logged for
//! its own object's `deleted` endpoint; a deleted Contact or Lead takes its Tasks (`WhoId`) and
//! Attachments. Which relationships cascade is what the parent's describe says
//! (`childRelationships[].cascadeDelete`, as recorded from real orgs). Only the data objects
//! (before [`FIRST_QUIRKY`]) are followed: the History, Feed and Share rows of a deleted record
//! are not rows an export reads back.

use std::collections::HashSet;

use super::describe::FIRST_QUIRKY;
use super::store::{LIVE, Store, Table, Val, pack};

/// A child relationship whose rows go with a deleted parent.
struct Cascade {
    /// The child object.
    child: usize,
    /// Its reference field pointing at the parent.
    field: usize,
}

impl Store {
    /// The relationships of `obj` whose children are deleted with it.
    fn cascades(&self, obj: usize) -> Vec<Cascade> {
        let meta = &self.catalog.objects[obj];
        let Some(rels) = meta.describe["childRelationships"].as_array() else {
            return Vec::new();
        };
        rels.iter()
            .filter(|r| r["cascadeDelete"] == true)
            .filter_map(|r| {
                let child = self.catalog.object(r["childSObject"].as_str()?)?;
                let field = self.catalog.objects[child].field(r["field"].as_str()?)?;
                (child < FIRST_QUIRKY).then_some(Cascade { child, field })
            })
            .collect()
    }

    /// The live children of the rows `gone` (packed) of `obj`, per cascading relationship.
    fn children_of(&self, obj: usize, gone: &HashSet<u64>) -> Vec<(usize, Vec<usize>)> {
        self.cascades(obj)
            .into_iter()
            .map(|c| {
                let t = &self.tables[c.child];
                let hits = (0..t.len())
                    .filter(|&r| {
                        t.state[r] == LIVE
                            && matches!(t.get(r, c.field), Val::Ref(p) if gone.contains(&p))
                    })
                    .collect();
                (c.child, hits)
            })
            .filter(|(_, hits): &(usize, Vec<usize>)| !hits.is_empty())
            .collect()
    }

    /// Deletes `rows` of `obj` (to the recycle bin, or `hard`) and, level by level, the live
    /// children of every deleted row whose relationship cascades; each row at `at(table, row)`.
    /// Returns every row deleted, packed: `rows` first, in their order, then the children.
    pub fn delete_cascading(
        &mut self,
        obj: usize,
        rows: &[usize],
        hard: bool,
        at: &dyn Fn(&Table, usize) -> i64,
    ) -> Vec<u64> {
        let mut deleted = Vec::new();
        let mut level = vec![(obj, rows.to_vec())];
        let mut children = false;
        while !level.is_empty() {
            let mut next = Vec::new();
            for (o, rows) in level {
                let mut gone = HashSet::new();
                for r in rows {
                    // A child reached twice (a Task under both the Account and its Contact)
                    // is deleted once.
                    if children && self.tables[o].state[r] != LIVE {
                        continue;
                    }
                    let ms = at(&self.tables[o], r);
                    self.tables[o].delete_row(r, ms, hard);
                    gone.insert(pack(o, r));
                    deleted.push(pack(o, r));
                }
                next.extend(self.children_of(o, &gone));
            }
            level = next;
            children = true;
        }
        deleted
    }

    /// Deletes the children of rows of `obj` already deleted (`rows`), at `ms`: for writes that
    /// delete record by record (a Bulk ingest job), cascaded once at their end. Returns the
    /// rows deleted, packed.
    pub fn cascade_from(&mut self, obj: usize, rows: &[usize], ms: i64, hard: bool) -> Vec<u64> {
        let gone: HashSet<u64> = rows.iter().map(|&r| pack(obj, r)).collect();
        let mut out = Vec::new();
        for (child, hits) in self.children_of(obj, &gone) {
            out.extend(self.delete_cascading(child, &hits, hard, &|_, _| ms));
        }
        out
    }
}
