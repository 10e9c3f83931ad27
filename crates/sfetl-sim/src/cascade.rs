//! Deletions that take children with them, and undeletions that bring them back. Deleting an
//! Account moves its Contacts, Opportunities, Tasks (by `WhatId`) and Attachments to the
//! recycle bin too, each logged for its own object's `deleted` endpoint; a deleted Contact or
//! Lead takes its Tasks (`WhoId`) and Attachments. Which relationships cascade is what the
//! parent's describe says (`childRelationships[].cascadeDelete`, as recorded from real orgs).
//! Only the data objects (before [`FIRST_QUIRKY`]) are followed: the History, Feed and Share
//! rows of a deleted record are not rows an export reads back. Each child remembers the row it
//! went with ([`Table::deleted_with`]): undeleting that row brings it back, and it cannot be
//! undeleted on its own. The lookups that do not cascade are cleared and restored beside
//! (see [`super::lookups`]).

use std::collections::HashSet;

use super::describe::FIRST_QUIRKY;
use super::store::{DELETED, LIVE, Store, Table, Val, pack};

/// Rows of one object to delete, each with the parent (packed) it goes with: none for a row
/// asked for, the parent for a child a cascade reached.
type Level = Vec<(usize, Vec<(usize, Option<u64>)>)>;

/// A child relationship of a parent object, as its describe lists it (`childRelationships`).
pub(crate) struct ChildRelationship {
    /// The child object.
    pub(crate) child: usize,
    /// Its reference field pointing at the parent.
    pub(crate) field: usize,
}

impl Store {
    /// The relationships of `obj`'s describe that `keep` takes (given the describe's entry),
    /// among the data objects: what a deletion cascades to, or clears (see
    /// [`super::lookups`]).
    pub(crate) fn child_relationships(
        &self,
        obj: usize,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<ChildRelationship> {
        let meta = &self.catalog.objects[obj];
        let Some(rels) = meta.describe["childRelationships"].as_array() else {
            return Vec::new();
        };
        rels.iter()
            .filter(|r| keep(r))
            .filter_map(|r| {
                let child = self.catalog.object(r["childSObject"].as_str()?)?;
                let field = self.catalog.objects[child].field(r["field"].as_str()?)?;
                (child < FIRST_QUIRKY).then_some(ChildRelationship { child, field })
            })
            .collect()
    }

    /// The relationships of `obj` whose children are deleted with it.
    fn cascades(&self, obj: usize) -> Vec<ChildRelationship> {
        self.child_relationships(obj, |r| r["cascadeDelete"] == true)
    }

    /// The live children of the rows `gone` (packed) of `obj`, per cascading relationship, each
    /// with the parent (packed) it goes with.
    fn children_of(&self, obj: usize, gone: &HashSet<u64>) -> Vec<(usize, Vec<(usize, u64)>)> {
        self.cascades(obj)
            .into_iter()
            .map(|c| {
                let t = &self.tables[c.child];
                let hits = (0..t.len())
                    .filter(|&r| t.state[r] == LIVE)
                    .filter_map(|r| match t.get(r, c.field) {
                        Val::Ref(p) if gone.contains(&p) => Some((r, p)),
                        _ => None,
                    })
                    .collect();
                (c.child, hits)
            })
            .filter(|(_, hits): &(usize, Vec<(usize, u64)>)| !hits.is_empty())
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
        let asked = rows.iter().map(|&r| (r, None)).collect();
        let deleted = self.delete_levels(vec![(obj, asked)], hard, at);
        // The lookups pointing at any of them that do not cascade are cleared.
        self.clear_lookups(&deleted, hard);
        deleted
    }

    /// Deletes, level by level, `level`'s rows (each with the parent it goes with, none for
    /// the rows asked for) and the live children of every row deleted.
    fn delete_levels(
        &mut self,
        mut level: Level,
        hard: bool,
        at: &dyn Fn(&Table, usize) -> i64,
    ) -> Vec<u64> {
        let mut deleted = Vec::new();
        while !level.is_empty() {
            let mut next = Vec::new();
            for (o, rows) in level {
                let mut gone = HashSet::new();
                for (r, parent) in rows {
                    // A child reached twice (a Task under both the Account and its Contact)
                    // is deleted once, with the first parent that reached it.
                    if parent.is_some() && self.tables[o].state[r] != LIVE {
                        continue;
                    }
                    let ms = at(&self.tables[o], r);
                    let t = &mut self.tables[o];
                    t.delete_row(r, ms, hard);
                    if let (Some(p), false) = (parent, hard) {
                        t.deleted_with.insert(r as u32, p);
                    }
                    gone.insert(pack(o, r));
                    deleted.push(pack(o, r));
                }
                next.extend(self.child_level(o, &gone));
            }
            level = next;
        }
        deleted
    }

    /// Deletes the children of rows of `obj` already deleted (`rows`), at `ms`: for writes that
    /// delete record by record (a Bulk ingest job), cascaded once at their end. Returns the
    /// rows deleted, packed.
    pub fn cascade_from(&mut self, obj: usize, rows: &[usize], ms: i64, hard: bool) -> Vec<u64> {
        let gone: HashSet<u64> = rows.iter().map(|&r| pack(obj, r)).collect();
        let level = self.child_level(obj, &gone);
        let deleted = self.delete_levels(level, hard, &|_, _| ms);
        let all: Vec<u64> = gone.into_iter().chain(deleted.iter().copied()).collect();
        self.clear_lookups(&all, hard);
        deleted
    }

    /// The live children of the rows `gone` of `obj`, as the next level to delete.
    fn child_level(&self, obj: usize, gone: &HashSet<u64>) -> Level {
        self.children_of(obj, gone)
            .into_iter()
            .map(|(c, hits)| (c, hits.into_iter().map(|(r, p)| (r, Some(p))).collect()))
            .collect()
    }

    /// Restores `rows` of `obj` from the recycle bin and, level by level, every row deleted
    /// with one of them by a cascade (and still in the bin), each at `at(table, row)`: live
    /// again, its SystemModstamp moved, its delete log entry kept. Returns every row restored,
    /// packed: `rows` first, in their order, then the children. The caller checks that `rows`
    /// are in the recycle bin and not there only through a parent.
    pub fn undelete_cascading(
        &mut self,
        obj: usize,
        rows: &[usize],
        at: &dyn Fn(&Table, usize) -> i64,
    ) -> Vec<u64> {
        let mut restored = Vec::new();
        let mut level: Vec<(usize, usize)> = rows.iter().map(|&r| (obj, r)).collect();
        while !level.is_empty() {
            let mut back = HashSet::new();
            for (o, r) in level {
                let ms = at(&self.tables[o], r);
                self.tables[o].undelete_row(r, ms);
                back.insert(pack(o, r));
                restored.push(pack(o, r));
            }
            level = self.deleted_with_any_of(&back);
        }
        // The lookups their deletion cleared point at them again.
        self.restore_lookups(&restored);
        restored
    }

    /// The rows still in the recycle bin that went there with one of `parents` (packed), in
    /// object and row order.
    fn deleted_with_any_of(&self, parents: &HashSet<u64>) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (o, t) in self.tables.iter().enumerate().take(FIRST_QUIRKY) {
            let mut rows: Vec<usize> = t
                .deleted_with
                .iter()
                .filter(|&(&r, p)| parents.contains(p) && t.state[r as usize] == DELETED)
                .map(|(&r, _)| r as usize)
                .collect();
            rows.sort_unstable();
            out.extend(rows.into_iter().map(|r| (o, r)));
        }
        out
    }
}
