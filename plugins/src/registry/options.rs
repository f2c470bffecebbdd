//! Component options in a format-neutral shape, and their deserialization with the
//! offending key's path.

use std::collections::BTreeMap;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// One option value, in a format-neutral shape (what TOML, JSON or a command line can
/// express).
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An ordered list.
    Array(Vec<OptionValue>),
    /// A nested table of named values.
    Table(BTreeMap<String, OptionValue>),
}

impl OptionValue {
    /// What kind of value this is, for error messages (`"a string"`, `"an integer"`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            OptionValue::String(_) => "a string",
            OptionValue::Integer(_) => "an integer",
            OptionValue::Float(_) => "a float",
            OptionValue::Bool(_) => "a boolean",
            OptionValue::Array(_) => "an array",
            OptionValue::Table(_) => "a table",
        }
    }
}

/// The options of one component, as given in its configuration section (without the
/// `kind` key that selected the plugin).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginOptions {
    values: BTreeMap<String, OptionValue>,
}

impl PluginOptions {
    /// No options: every plugin must accept this and use its defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options from named values.
    pub fn from_map(values: BTreeMap<String, OptionValue>) -> Self {
        Self { values }
    }

    /// Sets one option, replacing an earlier value of the same key.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: OptionValue) -> Self {
        self.values.insert(key.into(), value);
        self
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&OptionValue> {
        self.values.get(key)
    }

    /// Every option, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OptionValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when no option is given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Deserializes the options into `T` (typically a struct with
    /// `#[serde(deny_unknown_fields, default)]`).
    ///
    /// An unknown, missing or ill-typed key is [`BuildError::Option`] carrying the key's
    /// path inside these options (`levels`, `inner.block_size`, `sizes[2]`) and serde's
    /// description of the problem.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        let value = OptionValue::Table(self.values.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { String::new() } else { path };
            BuildError::Option { key, message: e.into_inner().to_string() }
        })
    }
}

/// Why a plugin could not build its factory from the options it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is unknown, missing or has the wrong type. `key` is its path within the
    /// component's options (empty when the problem is the options as a whole).
    #[error("{}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Option {
        /// Path of the offending key (`segment_size_bytes`, `inner.level`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The options parsed but the component refused them (out of range, inconsistent)
    /// or failed to start.
    #[error(transparent)]
    Component(#[from] strata_core::Error),
}

// ----- the deserializer behind `PluginOptions::parse` -----

type DeError = de::value::Error;

impl<'de> IntoDeserializer<'de, DeError> for OptionValue {
    type Deserializer = OptionValue;

    fn into_deserializer(self) -> OptionValue {
        self
    }
}

impl<'de> de::Deserializer<'de> for OptionValue {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            OptionValue::String(s) => visitor.visit_string(s),
            OptionValue::Integer(i) => visitor.visit_i64(i),
            OptionValue::Float(f) => visitor.visit_f64(f),
            OptionValue::Bool(b) => visitor.visit_bool(b),
            OptionValue::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            OptionValue::Table(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    /// Configuration formats have no null: a present key is `Some`, an absent one takes
    /// the struct's default.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// Unit variants are written as strings (`compression = "lz4"`); variants with data
    /// as a one-entry table (`{ fixed = 3 }`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            OptionValue::String(s) => visitor.visit_enum(s.into_deserializer()),
            OptionValue::Table(entries) if entries.len() == 1 => {
                let map = MapDeserializer::new(entries.into_iter());
                visitor.visit_enum(de::value::MapAccessDeserializer::new(map))
            }
            other => Err(de::Error::invalid_type(other.unexpected(), &"a variant name")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl OptionValue {
    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            OptionValue::String(s) => de::Unexpected::Str(s),
            OptionValue::Integer(i) => de::Unexpected::Signed(*i),
            OptionValue::Float(f) => de::Unexpected::Float(*f),
            OptionValue::Bool(b) => de::Unexpected::Bool(*b),
            OptionValue::Array(_) => de::Unexpected::Seq,
            OptionValue::Table(_) => de::Unexpected::Map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Opts {
        size_bytes: u64,
        ratio: f64,
        on: bool,
        name: String,
        limit: Option<u64>,
        mode: Mode,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        level: u32,
    }

    #[derive(Debug, serde::Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Fast,
        Safe,
    }

    impl Default for Opts {
        fn default() -> Self {
            Opts {
                size_bytes: 7,
                ratio: 0.5,
                on: false,
                name: "x".into(),
                limit: Some(3),
                mode: Mode::Fast,
                inner: Inner::default(),
            }
        }
    }

    #[test]
    fn options_parse_with_defaults_and_every_value_type() {
        let empty: Opts = PluginOptions::new().parse().expect("empty options parse");
        assert_eq!(empty, Opts::default());
        let opts = PluginOptions::new()
            .with("size_bytes", OptionValue::Integer(64))
            .with("ratio", OptionValue::Integer(2))
            .with("on", OptionValue::Bool(true))
            .with("name", OptionValue::String("n".into()))
            .with("limit", OptionValue::Integer(9))
            .with("mode", OptionValue::String("safe".into()))
            .with(
                "inner",
                OptionValue::Table([("level".to_owned(), OptionValue::Integer(4))].into()),
            );
        let parsed: Opts = opts.parse().expect("options parse");
        assert_eq!(
            parsed,
            Opts {
                size_bytes: 64,
                ratio: 2.0,
                on: true,
                name: "n".into(),
                limit: Some(9),
                mode: Mode::Safe,
                inner: Inner { level: 4 },
            }
        );
    }

    fn option_error(opts: PluginOptions) -> (String, String) {
        match opts.parse::<Opts>() {
            Err(BuildError::Option { key, message }) => (key, message),
            other => panic!("expected an option error, got {other:?}"),
        }
    }

    #[test]
    fn ill_typed_and_unknown_options_name_their_path() {
        let (key, message) = option_error(
            PluginOptions::new().with("size_bytes", OptionValue::String("big".into())),
        );
        assert_eq!(key, "size_bytes");
        assert!(message.contains("\"big\"") && message.contains("u64"), "{message}");

        let (key, _) = option_error(PluginOptions::new().with(
            "inner",
            OptionValue::Table([("level".to_owned(), OptionValue::Bool(true))].into()),
        ));
        assert_eq!(key, "inner.level");

        let (key, message) =
            option_error(PluginOptions::new().with("sise_bytes", OptionValue::Integer(1)));
        assert!(message.contains("unknown field `sise_bytes`"), "{key}: {message}");

        let (key, message) =
            option_error(PluginOptions::new().with("size_bytes", OptionValue::Integer(-1)));
        assert_eq!(key, "size_bytes");
        assert!(message.contains("-1"), "{message}");

        let (_, message) =
            option_error(PluginOptions::new().with("mode", OptionValue::String("slow".into())));
        assert!(message.contains("unknown variant `slow`"), "{message}");
    }
}
