//! Serde types for Salesforce's describe responses (`sobjects` and `sobjects/{X}/describe`).
//!
//! Only what the connector uses is typed; everything is optional or defaulted because describes
//! differ across API versions and orgs, and unknown keys are ignored.

use serde::Deserialize;

/// `GET sobjects`: the org's objects.
#[derive(Debug, Clone, Deserialize)]
pub struct DescribeGlobal {
    /// One entry per object.
    pub sobjects: Vec<GlobalObject>,
}

/// One object of describeGlobal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalObject {
    /// API name (`Account`, `Score__c`).
    pub name: String,
    /// Can be read with SOQL.
    #[serde(default)]
    pub queryable: bool,
    /// Can be replicated (getUpdated/getDeleted).
    #[serde(default)]
    pub replicateable: bool,
    /// Records can be retrieved.
    #[serde(default)]
    pub retrieveable: bool,
    /// A custom object.
    #[serde(default)]
    pub custom: bool,
}

/// `GET sobjects/{X}/describe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SObjectDescribe {
    /// API name.
    pub name: String,
    /// Fields in describe order.
    pub fields: Vec<FieldDescribe>,
    /// Can be read with SOQL.
    #[serde(default)]
    pub queryable: bool,
    /// Can be replicated.
    #[serde(default)]
    pub replicateable: bool,
    /// Records can be retrieved.
    #[serde(default)]
    pub retrieveable: bool,
    /// Records can be created.
    #[serde(default)]
    pub createable: bool,
    /// Records can be updated.
    #[serde(default)]
    pub updateable: bool,
    /// Records can be deleted.
    #[serde(default)]
    pub deletable: bool,
    /// The first three characters of every record Id of the object (`003` for Contact): which
    /// object an Id in a stream of several comes from.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// The lookups pointing at the object, with what a deletion of one of its records does to
    /// them: which children a deletion clears the lookup of, so that a read can deliver them
    /// ([`crate::source`]'s lookups cleared by a deletion).
    #[serde(default)]
    pub child_relationships: Vec<ChildRelationship>,
}

/// One `childRelationships[]` entry of a describe: a child object's lookup to this object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildRelationship {
    /// The child object.
    pub child_s_object: String,
    /// Its reference field.
    pub field: String,
    /// Deleting the parent deletes the child (master-detail, an Account's Contacts).
    #[serde(default)]
    pub cascade_delete: bool,
    /// The parent cannot be deleted while children point at it.
    #[serde(default)]
    pub restricted_delete: bool,
}

impl SObjectDescribe {
    /// The field named `name`, as SOQL reads names: case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One field of a describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    /// API name.
    pub name: String,
    /// Salesforce field type (`string`, `currency`, `address`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// SOAP type (`xsd:string`, `tns:ID`, ...).
    #[serde(default)]
    pub soap_type: Option<String>,
    /// Max length of text fields.
    #[serde(default)]
    pub length: u32,
    /// Total digits of numbers.
    #[serde(default)]
    pub precision: u32,
    /// Digits after the decimal point.
    #[serde(default)]
    pub scale: i32,
    /// Digits of integers.
    #[serde(default)]
    pub digits: u32,
    /// May be null.
    #[serde(default = "yes")]
    pub nillable: bool,
    /// Can be set on insert.
    #[serde(default)]
    pub createable: bool,
    /// Salesforce fills it when an insert leaves it out (`OwnerId`, checkboxes).
    #[serde(default)]
    pub defaulted_on_create: bool,
    /// Can be set on update.
    #[serde(default)]
    pub updateable: bool,
    /// A formula or roll-up.
    #[serde(default)]
    pub calculated: bool,
    /// A formula's text (`TEXT(Account.Industry)`, `TODAY() - DATEVALUE(CreatedDate)`): what
    /// it depends on decides how its value is kept fresh (it never moves the row's cursor).
    #[serde(default)]
    pub calculated_formula: Option<String>,
    /// For a component of a compound field: the compound's name (`BillingAddress`).
    #[serde(default)]
    pub compound_field_name: Option<String>,
    /// An external id field (usable by upsert).
    #[serde(default)]
    pub external_id: bool,
    /// Unique values.
    #[serde(default)]
    pub unique: bool,
    /// Name of the parent relationship of a reference (`Account` for `AccountId`).
    #[serde(default)]
    pub relationship_name: Option<String>,
    /// Objects a reference points to.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// May be used in WHERE (false for long text areas, and for a big object's non-index
    /// fields, its audit dates included).
    #[serde(default = "yes")]
    pub filterable: bool,
    /// May be used in ORDER BY.
    #[serde(default = "yes")]
    pub sortable: bool,
}

fn yes() -> bool {
    true
}
