//! Countries: ISO 3166-1 alpha-2 codes, the European Economic Area, and the countries with an EU
//! adequacy decision (GDPR Art. 45), which a DPA's transfers are checked against.

use crate::error::AppError;

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted.
pub const ISO_3166_1: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The European Economic Area: the 27 EU member states, Iceland, Liechtenstein and Norway. Personal
/// data moves freely among them; a transfer elsewhere needs a mechanism (GDPR Chapter V).
pub const EEA: &[&str] = &[
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// Countries with an adequacy decision of the European Commission (Art. 45): Andorra, Argentina,
/// Canada (commercial organisations), the Faroe Islands, Guernsey, Israel, the Isle of Man,
/// Japan, Jersey, New Zealand, the Republic of Korea, Switzerland, the United Kingdom, the
/// United States (organisations certified under the EU-US Data Privacy Framework) and Uruguay.
pub const ADEQUATE: &[&str] = &[
    "AD", "AR", "CA", "CH", "FO", "GB", "GG", "IL", "IM", "JE", "JP", "KR", "NZ", "US", "UY",
];

/// A country: an ISO 3166-1 alpha-2 code such as `DE` or `US`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(&'static str);

impl Country {
    /// Parses the value of the request field `field`.
    pub fn parse(field: &str, s: &str) -> Result<Country, AppError> {
        ISO_3166_1
            .binary_search(&s)
            .map(|i| Country(ISO_3166_1[i]))
            .map_err(|_| {
                AppError::validation(
                    field,
                    format!(
                        "{s:?} is not a country: use an ISO 3166-1 alpha-2 code such as DE or US"
                    ),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Whether the country is in the European Economic Area.
    pub fn in_eea(self) -> bool {
        EEA.contains(&self.0)
    }

    /// Whether the European Commission has found the country adequate.
    pub fn adequate(self) -> bool {
        ADEQUATE.contains(&self.0)
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Country::parse("country", &s).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

/// In the OpenAPI document: one of the codes.
impl utoipa::PartialSchema for Country {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An ISO 3166-1 alpha-2 country code."))
            .enum_values(Some(ISO_3166_1.iter().copied()))
            .into()
    }
}

impl utoipa::ToSchema for Country {}

/// The JSON Schema of a country.
pub fn country_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "enum": ISO_3166_1})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_and_consistent() {
        assert_eq!(ISO_3166_1.len(), 249);
        assert!(ISO_3166_1.windows(2).all(|w| w[0] < w[1]));
        for c in EEA.iter().chain(ADEQUATE) {
            assert!(Country::parse("c", c).is_ok(), "{c}");
        }
        assert_eq!(EEA.len(), 30);
        assert!(EEA.iter().all(|c| !ADEQUATE.contains(c)));
    }

    #[test]
    fn parses_codes_only() {
        let de = Country::parse("country", "DE").unwrap();
        assert!(de.in_eea() && !de.adequate());
        assert!(Country::parse("country", "JP").unwrap().adequate());
        for bad in ["de", "DEU", "XX", "", "EU", " DE"] {
            let e = Country::parse("country", bad).unwrap_err().to_string();
            assert!(e.contains("country"), "{bad}: {e}");
        }
    }
}
