//! A SOQL subset: what connectors send (field lists with parent relationships, WHERE with
//! AND/OR/NOT/parentheses, comparisons, IN, LIKE, ORDER BY, LIMIT, COUNT()). Anything else is a
//! `MALFORMED_QUERY`, with Salesforce's caret / Row / Column message format.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use super::aggregate::{Aggregate, DateFn, Group, Item};
use super::describe::{FType, FieldMeta, ObjectMeta};
use super::store::{DELETED, LIVE, Store, Val, parse_date, parse_stored_datetime, unpack};

/// A SOQL error: errorCode plus the full Salesforce-style message.
#[derive(Debug, Clone)]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD` or `INVALID_TYPE`.
    pub code: &'static str,
    /// The message, with the caret block when it points at a token.
    pub message: String,
}

/// The most relationship hops a child-to-parent path may take (`Contact.Account.Owner.Name` takes
/// two): Salesforce refuses more than five levels (SOQL and SOSL Reference, Relationship Query
/// Limits).
pub const MAX_HOPS: usize = 5;

/// A selected (or filtered / sorted) field path: `Name`, `Account.Name` or
/// `Account.Owner.Name`.
#[derive(Debug, Clone)]
pub struct Path {
    /// The relationships followed from the base object, first hop first (empty for a field of
    /// the base object): each hop's reference field lives on the previous hop's target, so a
    /// value is read by following them in order.
    pub hops: Vec<Via>,
    /// Canonical field name (in the last hop's target object for relationship paths).
    pub name: String,
    /// Field index in the base object (or in the last hop's single target object).
    pub field: usize,
    /// The field's type.
    pub ftype: FType,
    /// The describe's raw type.
    pub sf_type: String,
}

/// One relationship hop of a [`Path`].
#[derive(Debug, Clone)]
pub struct Via {
    /// Reference field index in the object the hop starts from.
    pub ref_field: usize,
    /// Canonical relationship name (`Account`, `Owner`, `Lead__r`).
    pub rel_name: String,
    /// Whether the reference is polymorphic (target resolved per row, only Id / Name allowed,
    /// and never followed further).
    pub polymorphic: bool,
}

impl Path {
    /// A field of the object itself (no relationship), for the record reads that list every
    /// field of an object rather than parse a SELECT.
    pub fn own(field: usize, meta: &FieldMeta) -> Path {
        Path {
            hops: Vec::new(),
            name: meta.name.clone(),
            field,
            ftype: meta.ftype,
            sf_type: meta.sf_type.clone(),
        }
    }

    /// The column name as Bulk CSV headers show it: the dotted path (`Account.Owner.Name`).
    pub fn label(&self) -> String {
        let mut label = String::new();
        for via in &self.hops {
            label.push_str(&via.rel_name);
            label.push('.');
        }
        label.push_str(&self.name);
        label
    }

    /// Whether two paths name the same field through the same chain of relationships (GROUP BY
    /// matching compares whole chains, not just the final field).
    pub fn same(&self, other: &Path) -> bool {
        self.field == other.field
            && self.name == other.name
            && self.hops.len() == other.hops.len()
            && self
                .hops
                .iter()
                .zip(&other.hops)
                .all(|(a, b)| a.ref_field == b.ref_field)
    }

    /// The field's index in `obj`, the object the path's last hop reached for a row (through a
    /// polymorphic hop the field is looked up by name on the row's actual target).
    pub fn field_in(&self, store: &Store, obj: usize) -> Option<usize> {
        match self.hops.last() {
            Some(v) if v.polymorphic => store.catalog.objects[obj].field(&self.name),
            _ => Some(self.field),
        }
    }
}

/// A literal in a WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `null`.
    Null,
    /// `'text'`.
    Str(String),
    /// A number.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A datetime literal, epoch ms.
    DateTime(i64),
    /// A date literal, days since epoch.
    Date(i32),
    /// A relative date literal (`TODAY`, `LAST_N_DAYS:7`...): the UTC days `[start, end)`.
    /// `=` means inside, `<` before the start, `>` from the end on.
    Days(i32, i32),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` / `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A WHERE expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `a AND b AND ...`
    And(Vec<Expr>),
    /// `a OR b OR ...`
    Or(Vec<Expr>),
    /// `NOT a`
    Not(Box<Expr>),
    /// `path op literal`
    Cmp(Path, Op, Lit),
    /// `path [NOT] IN (...)`
    In(Path, Vec<Lit>, bool),
    /// `path LIKE 'pattern'`
    Like(Path, String),
    /// `multipicklist INCLUDES ('a', 'b;c')` (or EXCLUDES when the flag is set): some listed
    /// item (itself a `;`-set) is contained in the value.
    Includes(Path, Vec<Vec<String>>, bool),
    /// `idField [NOT] IN (SELECT idField FROM Object WHERE ...)`: a semi-join (an anti-join
    /// when the flag is set), with the subquery's position in the text.
    SemiJoin(Path, Box<Query>, bool, usize),
    /// A semi-join as [`execute`] runs it: the ids its subquery selected.
    InSet(Path, Arc<HashSet<u64>>, bool),
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Base object index.
    pub object: usize,
    /// Selected paths, in SELECT order.
    pub fields: Vec<Path>,
    /// `SELECT COUNT() FROM ...`.
    pub count_only: bool,
    /// An aggregate query (`COUNT(field)`, date functions, `GROUP BY`): answered as
    /// `AggregateResult` records by the REST API, refused by Bulk API 2.0.
    pub aggregate: Option<Aggregate>,
    /// WHERE clause.
    pub filter: Option<Expr>,
    /// ORDER BY items: path, descending, nulls last.
    pub order: Vec<(Path, bool, bool)>,
    /// LIMIT.
    pub limit: Option<usize>,
    /// Where a parent-to-child subquery (`(SELECT Id FROM Contacts)`) sits in the SELECT list:
    /// Bulk API 2.0 refuses those; the REST side of the simulator does not serve them.
    pub child_subquery: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Sym(&'static str),
    Eof,
}

struct Lexer {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

fn lex(q: &str) -> Result<Vec<(Tok, usize)>, (usize, String)> {
    let b: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err((start, "unterminated string".into())),
                    Some('\\') => {
                        let e = *b
                            .get(i + 1)
                            .ok_or((start, "unterminated string".to_string()))?;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((Tok::Str(s), start));
            continue;
        }
        if c.is_ascii_digit()
            || (c == '-' || c == '+') && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())
        {
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], '.' | ':' | '-' | '+'))
            {
                i += 1;
            }
            out.push((Tok::Num(b[start..i].iter().collect()), start));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            while i < b.len() && (b[i].is_alphanumeric() || matches!(b[i], '_' | '.' | ':')) {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), start));
            continue;
        }
        let two: String = b[i..(i + 2).min(b.len())].iter().collect();
        let sym = match two.as_str() {
            "!=" => Some("!="),
            "<>" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(s) = sym {
            out.push((Tok::Sym(s), start));
            i += 2;
            continue;
        }
        let s = match c {
            '=' => "=",
            '<' => "<",
            '>' => ">",
            '(' => "(",
            ')' => ")",
            ',' => ",",
            _ => return Err((start, format!("unexpected token: '{c}'"))),
        };
        out.push((Tok::Sym(s), start));
        i += 1;
    }
    out.push((Tok::Eof, b.len()));
    Ok(out)
}

/// Builds a SOQL error message the way Salesforce does: the query, a caret under the offending
/// character, `ERROR at Row:R:Column:C`, then the text.
pub fn caret_message(q: &str, char_pos: usize, text: &str) -> String {
    let before: String = q.chars().take(char_pos).collect();
    let row = before.matches('\n').count() + 1;
    let col = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    let line = q.lines().nth(row - 1).unwrap_or("");
    let _ = line;
    format!(
        "\n{q}\n{}^\nERROR at Row:{row}:Column:{col}\n{text}",
        " ".repeat(col - 1)
    )
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Num(s) => s.clone(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Sym(s) => s.to_string(),
        Tok::Eof => "<EOF>".into(),
    }
}

/// Parses a SOQL query against the store's catalogue.
pub fn parse(q: &str, store: &Store) -> Result<Query, SoqlError> {
    let toks = lex(q).map_err(|(p, m)| SoqlError {
        code: "MALFORMED_QUERY",
        message: caret_message(q, p, &m),
    })?;
    let mut p = Parser {
        q,
        lx: Lexer { toks, pos: 0 },
        store,
        object: 0,
        nested: false,
    };
    p.query()
}

/// Where a field path has got to while it is resolved hop by hop.
enum Reached {
    /// An object (the base object, or a single-target relationship's target).
    Object(usize),
    /// A polymorphic relationship's targets: only `Id` and `Name`, on the entity Salesforce
    /// calls `Name`.
    Polymorphic,
    /// A reference to an object outside the catalogue (its name, for the error).
    Missing(String),
}

/// A SELECT item as written, resolved once FROM names the object.
struct RawItem {
    /// The field (the function's argument for a function item).
    name: String,
    /// Where the field is written.
    pos: usize,
    /// The function and where it is written (`COUNT`, a date function).
    func: Option<(String, usize)>,
    /// The alias and where it is written.
    alias: Option<(String, usize)>,
}

impl RawItem {
    fn new(name: String, pos: usize, func: Option<(String, usize)>) -> RawItem {
        RawItem {
            name,
            pos,
            func,
            alias: None,
        }
    }
}

struct Parser<'a> {
    q: &'a str,
    lx: Lexer,
    store: &'a Store,
    object: usize,
    /// Inside a semi-join's subquery (another one there is refused).
    nested: bool,
}

const KEYWORDS: [&str; 8] = [
    "from", "where", "group", "order", "limit", "and", "or", "not",
];

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.lx.toks[self.lx.pos].0
    }
    fn at(&self) -> usize {
        self.lx.toks[self.lx.pos].1
    }
    fn next(&mut self) -> Tok {
        let t = self.lx.toks[self.lx.pos].0.clone();
        if t != Tok::Eof {
            self.lx.pos += 1;
        }
        t
    }
    fn malformed(&self) -> SoqlError {
        let t = tok_text(self.peek());
        SoqlError {
            code: "MALFORMED_QUERY",
            message: caret_message(self.q, self.at(), &format!("unexpected token: '{t}'")),
        }
    }
    fn err_at(&self, code: &'static str, pos: usize, text: &str) -> SoqlError {
        SoqlError {
            code,
            message: caret_message(self.q, pos, text),
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.is_kw(kw) {
            self.next();
            Ok(())
        } else {
            Err(self.malformed())
        }
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), SoqlError> {
        if self.peek()
            == &Tok::Sym(match s {
                "(" => "(",
                ")" => ")",
                _ => ",",
            })
        {
            self.next();
            Ok(())
        } else {
            Err(self.malformed())
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        let q = self.statement()?;
        if self.peek() != &Tok::Eof {
            return Err(self.malformed());
        }
        if let Some(e) = &q.filter {
            self.semi_joins_on_top(e, true)?;
        }
        Ok(q)
    }

    /// A parent-to-child subquery in the SELECT list, `(SELECT ... FROM Children ...)`: skipped
    /// to its closing parenthesis; the query records where it was.
    fn skip_child_subquery(&mut self) -> Result<usize, SoqlError> {
        let pos = self.at();
        let mut depth = 0usize;
        loop {
            match self.next() {
                Tok::Sym("(") => depth += 1,
                Tok::Sym(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(pos);
                    }
                }
                Tok::Eof => return Err(self.malformed()),
                _ => {}
            }
        }
    }

    /// `SELECT ... FROM ... [WHERE ...] [ORDER BY ...] [LIMIT n]`, up to the token after it
    /// (the end of the text, or the `)` closing a subquery).
    fn statement(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("select")?;
        // Collect the raw items first: they are resolved once FROM names the object.
        let (raw, count_only, child_subquery) = self.select_list()?;
        self.expect_kw("from")?;
        let obj_pos = self.at();
        let Tok::Ident(obj_name) = self.next() else {
            self.lx.pos -= 1;
            return Err(self.malformed());
        };
        self.object = self.store.catalog.object(&obj_name).ok_or_else(|| {
            self.err_at(
                "INVALID_TYPE",
                obj_pos,
                &format!(
                    "sObject type '{obj_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                ),
            )
        })?;
        let aggregated = raw.iter().any(|r| r.func.is_some());
        let mut fields = Vec::new();
        if !aggregated {
            for r in &raw {
                fields.push(self.path(&r.name, r.pos)?);
            }
        }
        let mut filter = None;
        if self.is_kw("where") {
            self.next();
            filter = Some(self.or_expr()?);
        }
        let mut group_by = Vec::new();
        if self.is_kw("group") {
            self.next();
            self.expect_kw("by")?;
            loop {
                group_by.push(self.group_item()?);
                if self.peek() != &Tok::Sym(",") {
                    break;
                }
                self.next();
            }
        }
        let aggregate = if aggregated || !group_by.is_empty() {
            Some(self.aggregate(&raw, group_by)?)
        } else {
            None
        };
        if aggregate.is_none()
            && let Some((_, at)) = raw.iter().find_map(|r| r.alias.as_ref())
        {
            let text = "Only aggregate expressions use field aliasing";
            return Err(self.err_at("MALFORMED_QUERY", *at, text));
        }
        let mut order = Vec::new();
        if aggregate.is_some() && self.is_kw("order") {
            // ORDER BY of groups is outside the subset.
            return Err(self.malformed());
        }
        if self.is_kw("order") && !self.nested {
            self.next();
            self.expect_kw("by")?;
            loop {
                let pos = self.at();
                let Tok::Ident(name) = self.next() else {
                    self.lx.pos -= 1;
                    return Err(self.malformed());
                };
                let path = self.path(&name, pos)?;
                self.check_usable(&path, pos, true)?;
                let mut desc = false;
                if self.is_kw("asc") {
                    self.next();
                } else if self.is_kw("desc") {
                    self.next();
                    desc = true;
                }
                let mut nulls_last = desc;
                if self.is_kw("nulls") {
                    self.next();
                    if self.is_kw("first") {
                        nulls_last = false;
                    } else if self.is_kw("last") {
                        nulls_last = true;
                    } else {
                        return Err(self.malformed());
                    }
                    self.next();
                }
                order.push((path, desc, nulls_last));
                if self.peek() == &Tok::Sym(",") {
                    self.next();
                    continue;
                }
                break;
            }
        }
        let mut limit = None;
        if self.is_kw("limit") && !self.nested {
            self.next();
            match self.next() {
                Tok::Num(n) if n.parse::<usize>().is_ok() => limit = n.parse().ok(),
                _ => {
                    self.lx.pos -= 1;
                    return Err(self.malformed());
                }
            }
        }
        Ok(Query {
            object: self.object,
            fields,
            count_only,
            aggregate,
            filter,
            order,
            limit,
            child_subquery,
        })
    }

    /// Salesforce allows semi-joins only in the top-level AND of a WHERE clause, never under
    /// OR or NOT.
    fn semi_joins_on_top(&self, e: &Expr, top: bool) -> Result<(), SoqlError> {
        match e {
            Expr::And(v) => v.iter().try_for_each(|e| self.semi_joins_on_top(e, top)),
            Expr::Or(v) => v.iter().try_for_each(|e| self.semi_joins_on_top(e, false)),
            Expr::Not(e) => self.semi_joins_on_top(e, false),
            Expr::SemiJoin(_, _, _, pos) if !top => Err(self.err_at(
                "MALFORMED_QUERY",
                *pos,
                "Semi join sub-selects are only allowed at the top level WHERE expressions and not in nested WHERE expressions.",
            )),
            _ => Ok(()),
        }
    }

    /// The subquery of a semi-join on `left` (the `SELECT` is next): one Id or reference
    /// field, an optional WHERE, no ORDER BY or LIMIT, no semi-join of its own.
    fn semi_join_select(&mut self, left: &Path, left_pos: usize) -> Result<Query, SoqlError> {
        let pos = self.at();
        if !matches!(left.ftype, FType::Id | FType::Reference) {
            return Err(self.err_at(
                "MALFORMED_QUERY",
                left_pos,
                &format!(
                    "semi join sub selects are only allowed on id fields, cannot use: '{}'",
                    left.name
                ),
            ));
        }
        if self.nested {
            return Err(self.err_at(
                "MALFORMED_QUERY",
                pos,
                "Nesting of semi join sub-selects is not supported",
            ));
        }
        let outer = self.object;
        self.nested = true;
        let sub = self.statement();
        self.nested = false;
        self.object = outer;
        let sub = sub?;
        match sub.fields.as_slice() {
            [f] if matches!(f.ftype, FType::Id | FType::Reference) && !sub.count_only => Ok(sub),
            [f, ..] if !sub.count_only => Err(self.err_at(
                "MALFORMED_QUERY",
                pos,
                &format!(
                    "semi join sub selects can only query id fields, cannot use: '{}'",
                    f.label()
                ),
            )),
            _ => Err(self.err_at(
                "MALFORMED_QUERY",
                pos,
                "semi join sub selects must select exactly one id field",
            )),
        }
    }

    /// The SELECT list up to FROM, whether it is `COUNT()` alone, and where its first
    /// parent-to-child subquery is (skipped: see [`Query::child_subquery`]).
    fn select_list(&mut self) -> Result<(Vec<RawItem>, bool, Option<usize>), SoqlError> {
        let mut raw: Vec<RawItem> = Vec::new();
        let mut child = None;
        loop {
            if self.peek() == &Tok::Sym("(")
                && matches!(&self.lx.toks[self.lx.pos + 1].0,
                    Tok::Ident(s) if s.eq_ignore_ascii_case("select"))
            {
                child = child.or(Some(self.skip_child_subquery()?));
                if self.peek() != &Tok::Sym(",") {
                    return Ok((raw, false, child));
                }
                self.next();
                continue;
            }
            let pos = self.at();
            let Tok::Ident(s) = self.peek().clone() else {
                return Err(self.malformed());
            };
            if KEYWORDS.contains(&s.to_ascii_lowercase().as_str()) {
                return Err(self.malformed());
            }
            self.next();
            let mut item = if self.peek() == &Tok::Sym("(") {
                self.next();
                let count = s.eq_ignore_ascii_case("count");
                if count && self.peek() == &Tok::Sym(")") && raw.is_empty() {
                    self.next();
                    return Ok((raw, true, child));
                }
                if !count && DateFn::named(&s).is_none() {
                    // FIELDS(ALL), other aggregates, TYPEOF...: outside the subset.
                    self.lx.pos -= 2;
                    return Err(self.malformed());
                }
                let arg_pos = self.at();
                let Tok::Ident(arg) = self.next() else {
                    self.lx.pos -= 1;
                    return Err(self.malformed());
                };
                self.expect_sym(")")?;
                RawItem::new(arg, arg_pos, Some((s, pos)))
            } else {
                RawItem::new(s, pos, None)
            };
            if let Tok::Ident(a) = self.peek().clone()
                && !KEYWORDS.contains(&a.to_ascii_lowercase().as_str())
            {
                item.alias = Some((a, self.at()));
                self.next();
            }
            raw.push(item);
            if self.peek() != &Tok::Sym(",") {
                return Ok((raw, false, child));
            }
            self.next();
        }
    }

    /// One GROUP BY item: a field or a date function of one.
    fn group_item(&mut self) -> Result<Group, SoqlError> {
        let pos = self.at();
        let Tok::Ident(s) = self.next() else {
            self.lx.pos -= 1;
            return Err(self.malformed());
        };
        if self.peek() != &Tok::Sym("(") {
            return Ok(Group::Field(self.path(&s, pos)?));
        }
        let Some(f) = DateFn::named(&s) else {
            self.lx.pos -= 1;
            return Err(self.malformed());
        };
        self.next();
        let arg_pos = self.at();
        let Tok::Ident(arg) = self.next() else {
            self.lx.pos -= 1;
            return Err(self.malformed());
        };
        self.expect_sym(")")?;
        Ok(Group::Date(f, self.date_path(&arg, arg_pos, &s)?))
    }

    /// A field a date function applies to: a date or dateTime field.
    fn date_path(&self, name: &str, pos: usize, func: &str) -> Result<Path, SoqlError> {
        let p = self.path(name, pos)?;
        if matches!(p.ftype, FType::Date | FType::DateTime) {
            return Ok(p);
        }
        Err(self.err_at(
            "INVALID_FIELD",
            pos,
            &format!(
                "{}() can only be applied to a date or dateTime field: {}",
                func.to_ascii_uppercase(),
                p.name
            ),
        ))
    }

    /// The aggregate query of a SELECT list and its GROUP BY: every item named (alias, field
    /// name, or `expr0`, `expr1`, ... for unaliased functions) and every plain item grouped.
    fn aggregate(&self, raw: &[RawItem], group_by: Vec<Group>) -> Result<Aggregate, SoqlError> {
        let mut items = Vec::new();
        let mut unnamed = 0;
        for r in raw {
            let (item, field_name) = match &r.func {
                None => {
                    let p = self.path(&r.name, r.pos)?;
                    let name = p.name.clone();
                    (Item::Group(Group::Field(p)), Some(name))
                }
                Some((f, _)) if f.eq_ignore_ascii_case("count") => {
                    (Item::Count(self.path(&r.name, r.pos)?), None)
                }
                Some((f, _)) => {
                    let d = DateFn::named(f).ok_or_else(|| self.malformed())?;
                    (
                        Item::Group(Group::Date(d, self.date_path(&r.name, r.pos, f)?)),
                        None,
                    )
                }
            };
            if let Item::Group(g) = &item
                && !group_by.iter().any(|x| x.same(g))
            {
                let at = r.func.as_ref().map_or(r.pos, |(_, p)| *p);
                let text = format!("Field must be grouped or aggregated: {}", r.name);
                return Err(self.err_at("MALFORMED_QUERY", at, &text));
            }
            let name = match (&r.alias, field_name) {
                (Some((a, _)), _) => a.clone(),
                (None, Some(n)) => n,
                (None, None) => {
                    unnamed += 1;
                    format!("expr{}", unnamed - 1)
                }
            };
            items.push((name, item));
        }
        Ok(Aggregate { items, group_by })
    }

    fn meta(&self, obj: usize) -> &ObjectMeta {
        &self.store.catalog.objects[obj]
    }

    /// Resolves a field path as written (`Name`, `Account.Name`, `Account.Owner.Name`, the base
    /// object's name optionally in front) against the query's object, hop by hop.
    fn path(&self, name: &str, pos: usize) -> Result<Path, SoqlError> {
        let base = self.meta(self.object);
        let parts: Vec<&str> = name.split('.').collect();
        let parts: &[&str] = if parts.len() > 1 && parts[0].eq_ignore_ascii_case(&base.name) {
            &parts[1..]
        } else {
            &parts
        };
        let Some((field, rels)) = parts.split_last() else {
            return Err(self.malformed());
        };
        if rels.len() > MAX_HOPS {
            let text = format!(
                "Relationship path '{name}' has {} levels: a child-to-parent relationship can have no more than {MAX_HOPS} levels",
                rels.len()
            );
            return Err(self.err_at("MALFORMED_QUERY", pos, &text));
        }
        let mut hops = Vec::with_capacity(rels.len());
        let mut at = Reached::Object(self.object);
        for rel in rels {
            let (via, next) = self.hop(&at, rel, pos)?;
            hops.push(via);
            at = next;
        }
        self.end_field(hops, &at, field, pos)
    }

    /// One relationship hop from where a path has got to: the hop and where it leads.
    fn hop(&self, at: &Reached, rel: &str, pos: usize) -> Result<(Via, Reached), SoqlError> {
        let Reached::Object(obj) = *at else {
            // Past a polymorphic hop only Id and Name exist: Salesforce names no such column.
            return Err(self.no_column(pos, rel, &self.entity(at)));
        };
        let meta = self.meta(obj);
        let ri = meta.relationship(rel).ok_or_else(|| {
            self.err_at(
                "INVALID_FIELD",
                pos,
                &format!(
                    "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                ),
            )
        })?;
        let rm = &meta.fields[ri];
        let via = Via {
            ref_field: ri,
            rel_name: rm.relationship.clone().unwrap_or_default(),
            polymorphic: rm.polymorphic,
        };
        let target = rm.reference_to.first().cloned().unwrap_or_default();
        let next = if rm.polymorphic {
            Reached::Polymorphic
        } else {
            match self.store.catalog.object(&target) {
                Some(t) => Reached::Object(t),
                None => Reached::Missing(target),
            }
        };
        Ok((via, next))
    }

    /// The field a path ends with, on the object its hops reached (after a polymorphic hop, only
    /// `Id` or `Name`).
    fn end_field(
        &self,
        hops: Vec<Via>,
        at: &Reached,
        f: &str,
        pos: usize,
    ) -> Result<Path, SoqlError> {
        let bad = || self.no_column(pos, f, &self.entity(at));
        match at {
            Reached::Object(obj) => {
                let meta = self.meta(*obj);
                let i = meta.field(f).ok_or_else(bad)?;
                Ok(Path {
                    hops,
                    ..Path::own(i, &meta.fields[i])
                })
            }
            Reached::Polymorphic => {
                let canon = ["Id", "Name"]
                    .into_iter()
                    .find(|c| c.eq_ignore_ascii_case(f))
                    .ok_or_else(bad)?;
                let ftype = if canon == "Id" {
                    FType::Id
                } else {
                    FType::Text
                };
                Ok(Path {
                    hops,
                    name: canon.into(),
                    field: usize::MAX,
                    ftype,
                    sf_type: canon.to_lowercase(),
                })
            }
            Reached::Missing(_) => Err(bad()),
        }
    }

    /// The entity Salesforce names in an error about a column where a path has got to.
    fn entity(&self, at: &Reached) -> String {
        match at {
            Reached::Object(obj) => self.meta(*obj).name.clone(),
            Reached::Polymorphic => "Name".into(),
            Reached::Missing(name) => name.clone(),
        }
    }

    /// Salesforce's `INVALID_FIELD` for a column the entity does not have.
    fn no_column(&self, pos: usize, col: &str, entity: &str) -> SoqlError {
        self.err_at(
            "INVALID_FIELD",
            pos,
            &format!(
                "No such column '{col}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        )
    }

    /// The describe entry of a path's field (None through a polymorphic relationship).
    fn field_of(&self, p: &Path) -> Option<&FieldMeta> {
        let mut obj = self.object;
        for via in &p.hops {
            if via.polymorphic {
                return None;
            }
            let target = self.meta(obj).fields[via.ref_field].reference_to.first()?;
            obj = self.store.catalog.object(target)?;
        }
        self.meta(obj).fields.get(p.field)
    }

    /// Salesforce refuses WHERE on a field whose describe says `filterable: false` (and ORDER
    /// BY on one that is not `sortable`).
    fn check_usable(&self, p: &Path, pos: usize, sorting: bool) -> Result<(), SoqlError> {
        let Some(f) = self.field_of(p) else {
            return Ok(());
        };
        let (ok, verb) = if sorting {
            (f.sortable, "sorted")
        } else {
            (f.filterable, "filtered")
        };
        if ok {
            return Ok(());
        }
        Err(self.err_at(
            "INVALID_FIELD",
            pos,
            &format!("field '{}' can not be {verb} in a query call", f.name),
        ))
    }

    fn or_expr(&mut self) -> Result<Expr, SoqlError> {
        let mut v = vec![self.and_expr()?];
        while self.is_kw("or") {
            self.next();
            v.push(self.and_expr()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Expr::And(vec![]))
        } else {
            Expr::Or(v)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, SoqlError> {
        let mut v = vec![self.unary()?];
        while self.is_kw("and") {
            self.next();
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Expr::And(vec![]))
        } else {
            Expr::And(v)
        })
    }

    fn unary(&mut self) -> Result<Expr, SoqlError> {
        if self.is_kw("not") {
            self.next();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == &Tok::Sym("(") {
            self.next();
            let e = self.or_expr()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        let pos = self.at();
        let Tok::Ident(name) = self.next() else {
            self.lx.pos -= 1;
            return Err(self.malformed());
        };
        let path = self.path(&name, pos)?;
        self.check_usable(&path, pos, false)?;
        if self.is_kw("like") {
            self.next();
            return match self.next() {
                Tok::Str(s) => Ok(Expr::Like(path, s)),
                _ => {
                    self.lx.pos -= 1;
                    Err(self.malformed())
                }
            };
        }
        if self.is_kw("includes") || self.is_kw("excludes") {
            let excludes = self.is_kw("excludes");
            if path.sf_type != "multipicklist" {
                let pos = self.at();
                return Err(self.err_at(
                    "INVALID_FIELD",
                    pos,
                    &format!(
                        "includes or excludes operator only valid on multipicklist field: {}",
                        path.name
                    ),
                ));
            }
            self.next();
            self.expect_sym("(")?;
            let mut items = Vec::new();
            loop {
                match self.next() {
                    Tok::Str(s) => {
                        items.push(s.split(';').map(|p| p.trim().to_lowercase()).collect())
                    }
                    _ => {
                        self.lx.pos -= 1;
                        return Err(self.malformed());
                    }
                }
                if self.peek() == &Tok::Sym(",") {
                    self.next();
                    continue;
                }
                break;
            }
            self.expect_sym(")")?;
            return Ok(Expr::Includes(path, items, excludes));
        }
        let negate = self.is_kw("not");
        if negate {
            self.next();
        }
        if self.is_kw("in") {
            self.next();
            self.expect_sym("(")?;
            if self.is_kw("select") {
                let sub_pos = self.at();
                let sub = self.semi_join_select(&path, pos)?;
                self.expect_sym(")")?;
                return Ok(Expr::SemiJoin(path, Box::new(sub), negate, sub_pos));
            }
            let mut lits = Vec::new();
            loop {
                lits.push(self.literal(&path)?);
                if self.peek() == &Tok::Sym(",") {
                    self.next();
                    continue;
                }
                break;
            }
            self.expect_sym(")")?;
            return Ok(Expr::In(path, lits, negate));
        }
        if negate {
            return Err(self.malformed());
        }
        let op = match self.next() {
            Tok::Sym("=") => Op::Eq,
            Tok::Sym("!=") => Op::Ne,
            Tok::Sym("<") => Op::Lt,
            Tok::Sym("<=") => Op::Le,
            Tok::Sym(">") => Op::Gt,
            Tok::Sym(">=") => Op::Ge,
            _ => {
                self.lx.pos -= 1;
                return Err(self.malformed());
            }
        };
        let lit = self.literal(&path)?;
        Ok(Expr::Cmp(path, op, lit))
    }

    fn literal(&mut self, path: &Path) -> Result<Lit, SoqlError> {
        let today = self.store.today();
        let pos = self.at();
        let tok = self.next();
        let type_err = |ty: &str, quoted: bool| {
            self.err_at(
                "INVALID_FIELD",
                pos,
                &format!(
                    "value of filter criterion for field '{}' must be of type {ty} and should {}be enclosed in quotes",
                    path.name,
                    if quoted { "" } else { "not " }
                ),
            )
        };
        let lit = match (&tok, path.ftype) {
            (Tok::Ident(s), _) if s.eq_ignore_ascii_case("null") => Lit::Null,
            (Tok::Ident(s), FType::Boolean) if s.eq_ignore_ascii_case("true") => Lit::Bool(true),
            (Tok::Ident(s), FType::Boolean) if s.eq_ignore_ascii_case("false") => Lit::Bool(false),
            (_, FType::Boolean) => return Err(type_err("boolean", false)),
            (Tok::Ident(s), FType::DateTime | FType::Date) if relative_days(s, today).is_some() => {
                let (a, b) = relative_days(s, today).unwrap_or((0, 0));
                Lit::Days(a, b)
            }
            (Tok::Num(n), FType::DateTime) => {
                Lit::DateTime(parse_stored_datetime(n).ok_or_else(|| type_err("dateTime", false))?)
            }
            (_, FType::DateTime) => return Err(type_err("dateTime", false)),
            (Tok::Num(n), FType::Date) => {
                Lit::Date(parse_date(n).ok_or_else(|| type_err("date", false))?)
            }
            (_, FType::Date) => return Err(type_err("date", false)),
            (Tok::Num(n), FType::Int | FType::Long | FType::Double) => {
                Lit::Num(n.parse().map_err(|_| type_err("double", false))?)
            }
            (_, FType::Int | FType::Long | FType::Double) => return Err(type_err("double", false)),
            (Tok::Str(s), _) => Lit::Str(s.clone()),
            (Tok::Num(_) | Tok::Ident(_), _) => return Err(type_err("string", true)),
            _ => {
                self.lx.pos -= 1;
                return Err(self.malformed());
            }
        };
        Ok(lit)
    }
}

/// Reads a path's value for a row of the query's base object (relationship paths follow every
/// hop; a null, dangling or purged reference at any hop reads as null).
pub fn read<'s>(store: &'s Store, obj: usize, row: usize, p: &Path) -> Val<'s> {
    read_at(store, obj, row, p, None)
}

/// [`read`] as the rows stood when a Bulk query job completed (`at`: its [`Store::pin`]).
pub fn read_at<'s>(
    store: &'s Store,
    obj: usize,
    row: usize,
    p: &Path,
    at: Option<&[u64]>,
) -> Val<'s> {
    let Some((t, trow)) = follow_at(store, obj, row, &p.hops, at) else {
        return Val::Null;
    };
    p.field_in(store, t)
        .map_or(Val::Null, |f| store.get_at(t, trow, f, at))
}

/// The (object, row) a chain of hops reaches from a row, if every reference on the way is set
/// and present.
pub fn follow(store: &Store, obj: usize, row: usize, hops: &[Via]) -> Option<(usize, usize)> {
    follow_at(store, obj, row, hops, None)
}

fn follow_at(
    store: &Store,
    obj: usize,
    row: usize,
    hops: &[Via],
    at: Option<&[u64]>,
) -> Option<(usize, usize)> {
    hops.iter()
        .try_fold((obj, row), |(o, r), via| target_at(store, o, r, via, at))
}

/// The target (object, row) of a relationship for a row, if set and present.
pub fn target(store: &Store, obj: usize, row: usize, via: &Via) -> Option<(usize, usize)> {
    target_at(store, obj, row, via, None)
}

fn target_at(
    store: &Store,
    obj: usize,
    row: usize,
    via: &Via,
    at: Option<&[u64]>,
) -> Option<(usize, usize)> {
    match store.tables[obj].get_at(row, via.ref_field, at) {
        Val::Ref(r) => {
            let (t, trow) = unpack(r);
            let target = &store.tables[t];
            (trow < target.len() && target.state_at(trow, at) != super::store::PURGED)
                .then_some((t, trow))
        }
        _ => None,
    }
}

/// The UTC day range of a relative date literal, relative to `today` (the org's day).
fn relative_days(lit: &str, today: i32) -> Option<(i32, i32)> {
    let upper = lit.to_ascii_uppercase();
    let (name, n) = match upper.split_once(':') {
        Some((name, n)) => (
            name.to_string(),
            Some(n.parse::<i32>().ok().filter(|n| *n >= 0)?),
        ),
        None => (upper.clone(), None),
    };
    Some(match (name.as_str(), n) {
        ("TODAY", None) => (today, today + 1),
        ("YESTERDAY", None) => (today - 1, today),
        ("TOMORROW", None) => (today + 1, today + 2),
        ("LAST_N_DAYS", Some(n)) => (today - n, today + 1),
        ("NEXT_N_DAYS", Some(n)) => (today + 1, today + 1 + n),
        ("N_DAYS_AGO", Some(n)) => (today - n, today - n + 1),
        _ => return None,
    })
}

fn cmp_val(store: &Store, v: &Val<'_>, lit: &Lit) -> Option<Ordering> {
    let within = |x: i64, a: i64, b: i64| {
        Some(if x < a {
            Ordering::Less
        } else if x >= b {
            Ordering::Greater
        } else {
            Ordering::Equal
        })
    };
    match (v, lit) {
        (Val::DateTime(ms), Lit::Days(a, b)) => {
            within(*ms, *a as i64 * 86_400_000, *b as i64 * 86_400_000)
        }
        (Val::Date(d), Lit::Days(a, b)) => within(*d as i64, *a as i64, *b as i64),
        (Val::Null, _) | (_, Lit::Null) => None,
        (Val::Str(s), Lit::Str(l)) => Some(cmp_ci(s, l)),
        (Val::Ref(r), Lit::Str(l)) => {
            let id = store.id_of(*r);
            let id = if l.len() == 15 { &id[..15] } else { &id[..] };
            Some(id.cmp(l.as_str()))
        }
        (Val::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Val::Num(n), Lit::Num(l)) => n.partial_cmp(l),
        (Val::Int(n), Lit::Num(l)) => (*n as f64).partial_cmp(l),
        (Val::DateTime(n), Lit::DateTime(l)) => Some(n.cmp(l)),
        (Val::Date(n), Lit::Date(l)) => Some(n.cmp(l)),
        (Val::Time(n), Lit::Str(l)) => super::store::parse_time(l).map(|l| n.cmp(&l)),
        _ => None,
    }
}

fn cmp_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.to_lowercase().cmp(&b.to_lowercase())
    }
}

fn like(s: &str, pat: &str) -> bool {
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some(c) => {
                s.first()
                    .is_some_and(|x| x.to_lowercase().eq(c.to_lowercase()))
                    && go(&s[1..], &p[1..])
            }
        }
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    go(&s, &p)
}

/// Evaluates a WHERE expression for one row.
pub fn eval(store: &Store, obj: usize, row: usize, e: &Expr) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|e| eval(store, obj, row, e)),
        Expr::Or(v) => v.iter().any(|e| eval(store, obj, row, e)),
        Expr::Not(e) => !eval(store, obj, row, e),
        Expr::Cmp(p, op, lit) => {
            let v = read(store, obj, row, p);
            if *lit == Lit::Null {
                return match op {
                    Op::Eq => v.is_null(),
                    Op::Ne => !v.is_null(),
                    _ => false,
                };
            }
            match cmp_val(store, &v, lit) {
                None => *op == Op::Ne,
                Some(o) => match op {
                    Op::Eq => o == Ordering::Equal,
                    Op::Ne => o != Ordering::Equal,
                    Op::Lt => o == Ordering::Less,
                    Op::Le => o != Ordering::Greater,
                    Op::Gt => o == Ordering::Greater,
                    Op::Ge => o != Ordering::Less,
                },
            }
        }
        Expr::In(p, lits, negate) => {
            let v = read(store, obj, row, p);
            let hit = lits.iter().any(|l| {
                if *l == Lit::Null {
                    v.is_null()
                } else {
                    cmp_val(store, &v, l) == Some(Ordering::Equal)
                }
            });
            hit != *negate
        }
        Expr::Includes(p, items, excludes) => {
            let v = read(store, obj, row, p);
            let set: Vec<String> = match &v {
                Val::Str(s) => s.split(';').map(|x| x.trim().to_lowercase()).collect(),
                _ => Vec::new(),
            };
            let hit = items
                .iter()
                .any(|item| item.iter().all(|part| set.contains(part)));
            hit != *excludes
        }
        Expr::Like(p, pat) => match read(store, obj, row, p) {
            Val::Str(s) => like(&s, pat),
            _ => false,
        },
        Expr::InSet(p, ids, negate) => {
            let hit = matches!(read(store, obj, row, p), Val::Ref(r) if ids.contains(&r));
            hit != *negate
        }
        Expr::SemiJoin(..) => eval(store, obj, row, &resolve(store, e)),
    }
}

/// `e` with every semi-join run once: its subquery's ids, for [`eval`] to look up per row.
pub fn resolve(store: &Store, e: &Expr) -> Expr {
    match e {
        Expr::And(v) => Expr::And(v.iter().map(|e| resolve(store, e)).collect()),
        Expr::Or(v) => Expr::Or(v.iter().map(|e| resolve(store, e)).collect()),
        Expr::Not(e) => Expr::Not(Box::new(resolve(store, e))),
        Expr::SemiJoin(p, q, negate, _) => {
            let field = &q.fields[0];
            let ids = execute(store, q, false)
                .into_iter()
                .filter_map(|r| match read(store, q.object, r as usize, field) {
                    Val::Ref(id) => Some(id),
                    _ => None,
                })
                .collect();
            Expr::InSet(p.clone(), Arc::new(ids), *negate)
        }
        other => other.clone(),
    }
}

fn order_vals(store: &Store, a: &Val<'_>, b: &Val<'_>) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => cmp_ci(x, y),
        (Val::Ref(x), Val::Ref(y)) => store.id_of(*x).cmp(&store.id_of(*y)),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        (Val::DateTime(x), Val::DateTime(y)) => x.cmp(y),
        (Val::Time(x), Val::Time(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Runs a query: the matching rows of the base object, filtered, sorted and limited.
/// `all_rows` includes recycle-bin rows (queryAll).
pub fn execute(store: &Store, q: &Query, all_rows: bool) -> Vec<u32> {
    execute_counted(store, q, all_rows).0
}

/// [`execute`], plus how many rows matched before LIMIT (what a sort has to go through, and
/// so what a query timeout depends on).
pub fn execute_counted(store: &Store, q: &Query, all_rows: bool) -> (Vec<u32>, usize) {
    let t = &store.tables[q.object];
    let filter = q.filter.as_ref().map(|e| resolve(store, e));
    let mut rows: Vec<u32> = (0..t.len())
        .filter(|&r| t.state[r] == LIVE || all_rows && t.state[r] == DELETED)
        .filter(|&r| filter.as_ref().is_none_or(|e| eval(store, q.object, r, e)))
        .map(|r| r as u32)
        .collect();
    let id_only =
        q.order.len() == 1 && q.order[0].0.ftype == FType::Id && q.order[0].0.hops.is_empty();
    if !q.order.is_empty() && (!id_only || q.order[0].1) {
        rows.sort_by(|&a, &b| {
            for (p, desc, nulls_last) in &q.order {
                let (va, vb) = (
                    read(store, q.object, a as usize, p),
                    read(store, q.object, b as usize, p),
                );
                let o = match (va.is_null(), vb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if *nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, true) => {
                        if *nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    _ => {
                        let o = order_vals(store, &va, &vb);
                        if *desc { o.reverse() } else { o }
                    }
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.cmp(&b)
        });
    }
    let matched = rows.len();
    if let Some(l) = q.limit {
        rows.truncate(l);
    }
    (rows, matched)
}
