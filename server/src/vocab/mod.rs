//! The shared vocabulary (DESIGN §2): what several domains check and name the same way.
//!
//! - closed vocabularies stored as text ([`text_enum!`](crate::text_enum)): each gets its
//!   `as_str`, `parse`, the list of its values, serde as that text, and a field-level error
//!   naming the valid values;
//! - checked text ([`rules`]): `SubjectId`, `Key`, `Version`, `Url`, `Sha256Hex`,
//!   `Jurisdiction`, free text, and instants in the ledger's range, each with its JSON Schema in
//!   [`schema`];
//! - [`Seq`]: a ledger seq, one type in rows, events and the API;
//! - [`Problems`]: a request's field errors, gathered and answered once (422 or 409).

pub mod country;
pub mod problems;
pub mod rules;
pub mod schema;
pub mod seq;

pub use country::Country;
pub use problems::Problems;
pub use rules::{Jurisdiction, Key, Sha256Hex, SubjectId, Url, Version, bounded, instant, text};
pub use seq::Seq;

/// Declares a `Copy` enum whose values are stored and sent as the given text.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident : $what:literal { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $( $text => Some($name::$variant), )+ _ => None }
            }

            /// Parses the value of a request field, with an error that lists the valid values.
            pub fn parse_field(field: &str, s: &str) -> Result<$name, $crate::error::AppError> {
                $name::parse(s).ok_or_else(|| {
                    $crate::error::AppError::validation(
                        field,
                        format!(
                            "{:?} is not a {}; use one of {}",
                            s,
                            $what,
                            $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
            }

            /// A dense index (0..ALL.len()), for compact in-memory tables.
            pub fn index(self) -> u8 {
                self as u8
            }

            pub fn from_index(i: u8) -> Option<$name> {
                $name::ALL.get(usize::from(i)).copied()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("{:?} is not a {}", s, $what))
                })
            }
        }

        /// In the OpenAPI document: a string, one of the values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $what, ".")))
                    .enum_values(Some($name::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

#[cfg(test)]
mod tests {
    text_enum! {
        enum Colour: "colour" { Red => "red", DarkBlue => "dark_blue" }
    }

    #[test]
    fn round_trips_and_names_valid_values() {
        assert_eq!(Colour::parse("dark_blue"), Some(Colour::DarkBlue));
        assert_eq!(Colour::DarkBlue.as_str(), "dark_blue");
        assert_eq!(Colour::from_index(Colour::Red.index()), Some(Colour::Red));
        assert_eq!(Colour::from_index(2), None);
        let e = Colour::parse_field("colour", "green")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use one of red, dark_blue"), "{e}");
        let v: Colour = serde_json::from_str("\"red\"").unwrap();
        assert_eq!(v, Colour::Red);
        assert!(serde_json::from_str::<Colour>("\"green\"").is_err());
        assert_eq!(
            serde_json::to_string(&Colour::DarkBlue).unwrap(),
            "\"dark_blue\""
        );
    }
}
