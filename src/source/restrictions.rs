//! Objects Salesforce will not read the ordinary way, and what sfetl does with each: one table,
//! matched by object name (known before any query) or by the text of Salesforce's refusal (an
//! object sfetl has not met before). A full-org read never fails on them: it reads them the way
//! they allow, or skips them with one WARN naming the object and the reason.

/// What sfetl does with a restricted object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Read nothing: one WARN names the object and the reason, and the stream completes empty.
    Skip,
    /// Read through the REST API: Bulk API 2.0 refuses the object or one of its fields.
    Rest,
    /// Read through REST one page per query (`Id > last ORDER BY Id LIMIT n`): the object has
    /// no `queryMore`, so a result must fit one page.
    IdRanges,
}

/// How a rule recognises an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The object's API name.
    Object(&'static str),
    /// Object names ending so (`AccountFeed`, `Score__Feed`).
    Suffix(&'static str),
    /// Text in Salesforce's error answer (case-sensitive, as Salesforce words it).
    Error(&'static str),
}

/// One rule of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    /// Which objects or answers the rule is for.
    pub when: Match,
    /// Why Salesforce will not read them the ordinary way (ends a sentence naming the object).
    pub reason: &'static str,
    /// What sfetl does.
    pub handling: Handling,
}

const NEEDS_FILTER: &str = "Salesforce answers queries of it only with a filter on one record's Id";
const NO_BULK: &str = "Bulk API 2.0 does not support it";
const NO_QUERY_MORE: &str =
    "Salesforce does not support queryMore on it, so every query must fit one page";

/// The rules, first match wins: names before texts. README's "Objects Salesforce will not read
/// the ordinary way" lists them.
pub const RESTRICTIONS: &[Restriction] = &[
    rule(
        Match::Object("ContentDocumentLink"),
        "Salesforce answers queries of it only with a filter on ContentDocumentId or LinkedEntityId",
        Handling::Skip,
    ),
    rule(
        Match::Object("UserRecordAccess"),
        "Salesforce answers queries of it only with filters on UserId and RecordId",
        Handling::Skip,
    ),
    rule(Match::Object("TaskStatus"), NO_BULK, Handling::Rest),
    rule(Match::Object("CaseStatus"), NO_BULK, Handling::Rest),
    rule(Match::Object("RecentlyViewed"), NO_BULK, Handling::Rest),
    rule(
        Match::Suffix("Feed"),
        "Bulk API 2.0 does not support feed objects",
        Handling::Rest,
    ),
    rule(
        Match::Object("EntityDefinition"),
        NO_QUERY_MORE,
        Handling::IdRanges,
    ),
    rule(
        Match::Error("Implementation restriction"),
        NEEDS_FILTER,
        Handling::Skip,
    ),
    rule(
        Match::Error("does not support queryMore"),
        NO_QUERY_MORE,
        Handling::IdRanges,
    ),
    rule(
        Match::Error("not supported by the Bulk API"),
        NO_BULK,
        Handling::Rest,
    ),
    rule(Match::Error("INVALIDENTITY"), NO_BULK, Handling::Rest),
    rule(
        Match::Error("not supported in Bulk Query"),
        "Bulk API 2.0 cannot select some of its fields (compound, base64 or json)",
        Handling::Rest,
    ),
    rule(
        Match::Error("compound data not supported"),
        "Bulk API 2.0 cannot select its compound fields",
        Handling::Rest,
    ),
    rule(
        Match::Error("does not support query"),
        "Bulk API 2.0 cannot query it",
        Handling::Rest,
    ),
    rule(
        Match::Error("FeatureNotEnabled"),
        "Bulk API 2.0 is not enabled for it",
        Handling::Rest,
    ),
];

const fn rule(when: Match, reason: &'static str, handling: Handling) -> Restriction {
    Restriction {
        when,
        reason,
        handling,
    }
}

/// The rule for an object known by name, if any.
pub fn for_object(object: &str) -> Option<&'static Restriction> {
    RESTRICTIONS.iter().find(|r| match r.when {
        Match::Object(name) => name.eq_ignore_ascii_case(object),
        Match::Suffix(end) => object.len() > end.len() && object.ends_with(end),
        Match::Error(_) => false,
    })
}

/// The rule for an error answer's text, if any.
pub fn for_error(text: &str) -> Option<&'static Restriction> {
    RESTRICTIONS.iter().find(|r| match r.when {
        Match::Error(needle) => text.contains(needle),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_salesforce_answers_find_their_rule() {
        let handling = |r: Option<&Restriction>| r.map(|r| r.handling);
        assert_eq!(
            handling(for_object("ContentDocumentLink")),
            Some(Handling::Skip)
        );
        assert_eq!(handling(for_object("TaskStatus")), Some(Handling::Rest));
        assert_eq!(handling(for_object("AccountFeed")), Some(Handling::Rest));
        assert_eq!(handling(for_object("Feed")), None);
        assert_eq!(
            handling(for_object("EntityDefinition")),
            Some(Handling::IdRanges)
        );
        assert_eq!(handling(for_object("Account")), None);
        // The simulator's (and Salesforce's) answers, as sfetl prints them.
        let cases = [
            (
                "Salesforce answered HTTP 400 MALFORMED_QUERY: Implementation restriction: Vote requires a filter by ParentId",
                Handling::Skip,
            ),
            (
                "Bulk query job 750 ended Failed: InvalidBatch : Failed to process query: EXCEEDED_ID_LIMIT: EntityDefinition does not support queryMore(), use LIMIT to restrict the results to a single batch",
                Handling::IdRanges,
            ),
            (
                "Salesforce answered HTTP 400 INVALIDENTITY: Entity 'Idea' is not supported by the Bulk API.",
                Handling::Rest,
            ),
            (
                "Salesforce answered HTTP 400 FUNCTIONALITY_NOT_ENABLED: Selecting compound data not supported in Bulk Query",
                Handling::Rest,
            ),
            (
                "Salesforce answered HTTP 400 FUNCTIONALITY_NOT_ENABLED: Selecting json field Data__c is not supported in Bulk Query",
                Handling::Rest,
            ),
            (
                "Salesforce answered HTTP 400 FUNCTIONALITY_NOT_ENABLED: Base64 field Body is not supported in Bulk Query",
                Handling::Rest,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(handling(for_error(text)), Some(want), "{text}");
        }
        assert_eq!(
            for_error("Salesforce answered HTTP 400 INVALID_FIELD: No such column"),
            None
        );
    }
}
