//! Strict JSON: refuses what serde_json and serde's derive let through but our contracts do not.
//!
//! Why it exists: a derived `Deserialize` for a struct also reads a *sequence* of field values,
//! and serde_json offers it one when the input is an array, so `["name", 7]` would read as a
//! subscription patch `{"friendlyName": "name", "quantity": 7}`. serde_json also keeps the last
//! of duplicate keys: a derived struct refuses a repeated field it knows, but not one it ignores,
//! nor one inside a `serde_json::Value` (a webhook's `data`). And a value a struct ignores is
//! skipped by serde_json without being looked at: no duplicate key nor invalid UTF-8 inside it is
//! ever noticed. Neither serde nor serde_json has an option for any of this (serde-rs/serde#1587,
//! serde-rs/json#762), and per-field attributes would miss ignored fields and `Value`s.
//!
//! [`Strict`] wraps a deserializer, and every deserializer, visitor and access it hands on, so
//! that at every depth: a struct is read only from an object (`deserialize_struct` asks the
//! format for a map, so an array is "invalid type: sequence, expected a JSON object"); no object
//! holds the same key twice ("duplicate field `key`", reported by the map that holds it); and an
//! ignored value is read like any other, so both rules (and serde_json's UTF-8 check of every
//! string) reach inside it. Everything else is forwarded unchanged, so the wrapped format answers
//! exactly as before for bodies that keep the rules.
//!
//! In: any serde `Deserializer` (serde_json's over request bytes, or a parsed `Value`). Out: the
//! same values, or the inner format's error type; [`crate::body`] turns those errors into 400/422
//! problem+json naming the JSON path.

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// The prefix of the error message for a repeated key (the key follows in backticks), the same
/// words serde's derive uses for a repeated field it knows.
const DUPLICATE_FIELD: &str = "duplicate field `";

/// A deserializer that keeps the strict rules (see the module documentation) at every depth.
pub(crate) struct Strict<D>(pub(crate) D);

/// Forwards `deserialize_*` methods to the inner deserializer with the visitor wrapped.
macro_rules! forward_wrapped {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method($($arg,)* Wrap::any(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    /// A struct is read from a map only: the format never offers the visitor a sequence.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap::object(visitor))
    }

    /// An ignored value is read (and checked) like any other instead of skipped unseen.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Wrap::any(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose nested deserializers and accesses are [`Strict`] too. `object` marks the
/// visitor of a struct: it refuses a sequence even where the format offers one (an enum's
/// struct variant).
struct Wrap<V> {
    inner: V,
    object: bool,
}

impl<V> Wrap<V> {
    fn any(inner: V) -> Self {
        Wrap { inner, object: false }
    }

    fn object(inner: V) -> Self {
        Wrap { inner, object: true }
    }
}

/// Forwards scalar `visit_*` methods unchanged.
macro_rules! forward_visits {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object {
            formatter.write_str("a JSON object")
        } else {
            self.inner.expecting(formatter)
        }
    }

    forward_visits! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.object {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(Seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(Map { inner: map, seen: SeenKeys::default() })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(Enum(data))
    }
}

/// A seed whose deserializer is [`Strict`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

/// The elements of an array, each strict.
struct Seq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// The entries of an object: each key is read as text and refused if seen before in this
/// object; each value is strict.
struct Map<'de, A> {
    inner: A,
    seen: SeenKeys<'de>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.inner.next_key_seed(KeyText)? else { return Ok(None) };
        // The caller's seed reads the key from its text, as it would from the format's own key
        // (and a path tracker around us learns the key before a repeat is refused, so the error
        // names it).
        let value = match &key {
            Cow::Borrowed(text) => seed.deserialize(BorrowedStrDeserializer::new(text)),
            Cow::Owned(text) => seed.deserialize(StrDeserializer::new(text)),
        }?;
        if self.seen.contains(&key) {
            return Err(de::Error::custom(format_args!("{DUPLICATE_FIELD}{key}`")));
        }
        self.seen.insert(key);
        Ok(Some(value))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Reads a key as text, borrowed from the input when the format allows (serde_json does for
/// keys without escapes), so remembering it costs no allocation.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Objects up to this many keys are checked by a linear scan (no hashing, no allocation
/// beyond one small vector); larger ones move to a hash set, so a 1 MiB object of distinct
/// keys costs linear time, not quadratic.
const LINEAR_KEYS: usize = 16;

/// The keys of one object seen so far.
#[derive(Default)]
struct SeenKeys<'de> {
    few: Vec<Cow<'de, str>>,
    /// Built only for objects past [`LINEAR_KEYS`] (a `HashSet` costs a random seed to create).
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> SeenKeys<'de> {
    fn contains(&self, key: &str) -> bool {
        match &self.many {
            None => self.few.iter().any(|k| k == key),
            Some(many) => many.contains(key),
        }
    }

    fn insert(&mut self, key: Cow<'de, str>) {
        match &mut self.many {
            Some(many) => {
                many.insert(key);
            }
            None if self.few.len() < LINEAR_KEYS => self.few.push(key),
            None => {
                let mut many: HashSet<_> = self.few.drain(..).collect();
                many.insert(key);
                self.many = Some(many);
            }
        }
    }
}

/// An enum's variant, read strictly.
struct Enum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
    type Error = A::Error;
    type Variant = Variant<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, Variant(variant)))
    }
}

/// An enum variant's content, read strictly (a struct variant from an object only).
struct Variant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap::any(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap::object(visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Pair {
        name: String,
        count: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        pairs: Vec<Pair>,
        #[serde(default)]
        extra: Value,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Shape {
        Dot,
        Circle { radius: u32 },
        Line(u32, u32),
    }

    fn strict<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        let value = T::deserialize(Strict(&mut de)).map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(value)
    }

    #[test]
    fn objects_read_as_before() {
        let outer: Outer = strict(r#"{"pairs":[{"name":"a","count":1}],"extra":{"k":[1,{"x":null}]}}"#).unwrap();
        assert_eq!(outer.pairs, vec![Pair { name: "a".into(), count: 1 }]);
        assert_eq!(outer.extra["k"][1]["x"], Value::Null);
        assert_eq!(strict::<Option<Pair>>("null").unwrap(), None);
        assert_eq!(strict::<Shape>(r#""Dot""#).unwrap(), Shape::Dot);
        assert_eq!(strict::<Shape>(r#"{"Circle":{"radius":2}}"#).unwrap(), Shape::Circle { radius: 2 });
        assert_eq!(strict::<Shape>(r#"{"Line":[1,2]}"#).unwrap(), Shape::Line(1, 2));
        let map: BTreeMap<String, u32> = strict(r#"{"a":1,"b\u0041":2}"#).unwrap();
        assert_eq!(map.get("bA"), Some(&2));
    }

    #[test]
    fn a_struct_is_never_read_from_an_array() {
        let err = strict::<Pair>(r#"["a", 1]"#).unwrap_err();
        assert!(err.starts_with("invalid type: sequence, expected a JSON object"), "{err}");
        let err = strict::<Outer>(r#"{"pairs":[["a", 1]]}"#).unwrap_err();
        assert!(err.starts_with("invalid type: sequence, expected a JSON object"), "{err}");
        let err = strict::<Shape>(r#"{"Circle":[2]}"#).unwrap_err();
        assert!(err.starts_with("invalid type: sequence, expected a JSON object"), "{err}");
        // Through a `Value` too (a webhook's `data` is read twice).
        let value: Value = serde_json::from_str(r#"["a", 1]"#).unwrap();
        assert!(Pair::deserialize(Strict(value)).is_err());
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for json in [
            r#"{"name":"a","count":1,"name":"b"}"#,
            r#"{"name":"a","count":1,"other":1,"other":2}"#,
            r#"{"name":"a","count":1,"other":{"deep":[{"k":1,"k":1}]}}"#,
        ] {
            let err = strict::<Pair>(json).unwrap_err();
            assert!(err.starts_with(DUPLICATE_FIELD), "{json}: {err}");
        }
        let err = strict::<Outer>(r#"{"pairs":[],"extra":{"a":{"b":1,"b":2}}}"#).unwrap_err();
        assert!(err.starts_with("duplicate field `b`"), "{err}");
        let err = strict::<Value>(r#"{"a":1,"\u0061":2}"#).unwrap_err();
        assert!(err.starts_with("duplicate field `a`"), "an escaped spelling is the same key: {err}");
        let err = strict::<BTreeMap<String, u32>>(r#"{"a":1,"a":1}"#).unwrap_err();
        assert!(err.starts_with("duplicate field `a`"), "{err}");
    }

    #[test]
    fn large_objects_are_checked_in_linear_time() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\":{i}")).collect();
        let json = format!("{{{}}}", keys.join(","));
        assert_eq!(strict::<Value>(&json).unwrap().as_object().unwrap().len(), 20_000);
        let repeated = format!("{{{},\"k19999\":0}}", keys.join(","));
        assert!(strict::<Value>(&repeated).unwrap_err().starts_with("duplicate field `k19999`"));
    }

    #[test]
    fn ignored_values_are_read_not_skipped() {
        // serde_json skips an ignored string without checking its UTF-8.
        let bytes = b"{\"name\":\"a\",\"count\":1,\"note\":\"\xff\"}";
        assert!(serde_json::from_slice::<Pair>(bytes).is_ok());
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let err = Pair::deserialize(Strict(&mut de)).unwrap_err();
        assert!(err.to_string().starts_with("invalid unicode code point"), "{err}");
    }
}
