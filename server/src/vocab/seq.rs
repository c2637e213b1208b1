//! [`Seq`]: a ledger entry's position, one type in rows, in events and in the API.
//!
//! Stored as a `BIGINT` (both backends have signed 64-bit integers only) and sent as a
//! non-negative JSON integer. A seq is below the ledger's size, and the size never reaches 2^63,
//! so every seq fits both; the conversions are checked here, once.

use std::fmt;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::BigInt;

use crate::error::AppError;

/// A ledger entry's position (or a tree size: the seq the next entry gets).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, AsExpression, FromSqlRow,
)]
#[diesel(sql_type = BigInt)]
pub struct Seq(i64);

impl Seq {
    pub const ZERO: Seq = Seq(0);

    /// The seq `n`. Seqs come from the ledger's size, which stays far below 2^63; a larger `n`
    /// (no ledger holds one) is kept as the largest seq.
    pub fn new(n: u64) -> Seq {
        Seq(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// A stored value: refused if negative (no row Accord writes holds one).
    pub fn stored(v: i64) -> Result<Seq, String> {
        if v < 0 {
            Err(format!("{v} is not a ledger seq"))
        } else {
            Ok(Seq(v))
        }
    }

    pub const fn get(self) -> u64 {
        self.0.unsigned_abs()
    }

    /// The value as stored.
    pub const fn stored_value(self) -> i64 {
        self.0
    }

    /// The seq after this one.
    pub fn next(self) -> Seq {
        Seq::new(self.get() + 1)
    }

    /// Reads a request field: a non-negative whole number.
    pub fn parse(field: &str, s: &str) -> Result<Seq, AppError> {
        s.parse::<u64>()
            .ok()
            .and_then(|n| i64::try_from(n).ok())
            .map(Seq)
            .ok_or_else(|| {
                AppError::validation(
                    field,
                    format!("{s:?} is not a ledger seq (a non-negative integer)"),
                )
            })
    }

    /// `field` names a seq or tree size (`value`) the ledger has not reached (it holds `size`
    /// entries): the state decides, so a 409 naming the field.
    pub fn beyond(field: &str, value: u64, size: u64) -> AppError {
        AppError::unmet(
            field,
            format!(
                "{value} is beyond the ledger, which holds {size} entries (seqs 0 to {}); pass a seq a write returned",
                size.saturating_sub(1)
            ),
        )
    }
}

/// For [`crate::body::whole_number`]: a JSON number read as a seq.
impl TryFrom<i128> for Seq {
    type Error = std::num::TryFromIntError;

    fn try_from(n: i128) -> Result<Seq, Self::Error> {
        u64::try_from(n).and_then(i64::try_from).map(Seq)
    }
}

impl From<Seq> for u64 {
    fn from(s: Seq) -> u64 {
        s.get()
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialEq<u64> for Seq {
    fn eq(&self, other: &u64) -> bool {
        self.get() == *other
    }
}

impl serde::Serialize for Seq {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

impl<'de> serde::Deserialize<'de> for Seq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        i64::try_from(n)
            .map(Seq)
            .map_err(|_| serde::de::Error::custom(format!("{n} is not a ledger seq")))
    }
}

/// In the OpenAPI document: a non-negative 64-bit integer.
impl utoipa::PartialSchema for Seq {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Int64,
            )))
            .minimum(Some(0))
            .maximum(Some(i64::MAX))
            .description(Some("A ledger seq (an entry's position, from 0)."))
            .into()
    }
}

impl utoipa::ToSchema for Seq {}

impl<DB: Backend> FromSql<BigInt, DB> for Seq
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Seq::stored(i64::from_sql(bytes)?)?)
    }
}

impl<DB: Backend> ToSql<BigInt, DB> for Seq
where
    i64: ToSql<BigInt, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_non_negative_integers_only() {
        assert_eq!(Seq::parse("seq", "0").unwrap(), Seq::ZERO);
        assert_eq!(Seq::parse("seq", "42").unwrap().get(), 42);
        assert_eq!(Seq::parse("seq", "007").unwrap().get(), 7);
        for bad in ["", "-1", "1.0", "9223372036854775808", " 1", "x"] {
            assert!(Seq::parse("seq", bad).is_err(), "{bad:?}");
        }
        assert_eq!(Seq::new(u64::MAX).stored_value(), i64::MAX);
        assert!(Seq::stored(-1).is_err());
    }

    #[test]
    fn is_a_plain_number_in_json() {
        assert_eq!(serde_json::to_string(&Seq::new(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<Seq>("7").unwrap(), Seq::new(7));
        assert!(serde_json::from_str::<Seq>("-1").is_err());
        assert!(serde_json::from_str::<Seq>("9223372036854775808").is_err());
    }
}
