//! Tencent sends some numbers as strings (`"EventTime":"1670574414123"`): these
//! deserializers take both, and name the expected type when neither fits.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

pub trait Number: Sized + std::str::FromStr {
    fn from_u64(v: u64) -> Option<Self>;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn from_u64(v: u64) -> Option<Self> { v.try_into().ok() }
            fn from_i64(v: i64) -> Option<Self> { v.try_into().ok() }
            fn from_f64(_: f64) -> Option<Self> { None }
        }
    )*};
}
integer!(u32, u64, i32, i64);

impl Number for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

struct NumberVisitor<T>(PhantomData<T>);

impl<'de, T: Number> Visitor<'de> for NumberVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} as a number or a string", std::any::type_name::<T>())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::from_u64(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::from_i64(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.trim()
            .parse()
            .map(Some)
            .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// An optional number, given as a number or as a string holding one.
pub fn number<'de, D: Deserializer<'de>, T: Number>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_option(NumberVisitor(PhantomData))
}

/// A field that is a string, or a number taken leniently.
pub trait Field: Sized {
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error>;
}

impl Field for String {
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

macro_rules! numeric_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
                number(d)
            }
        }
    )*};
}
numeric_field!(u32, u64, i32, i64, f64);

pub fn field<'de, D: Deserializer<'de>, T: Field>(d: D) -> Result<Option<T>, D::Error> {
    T::read(d)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Probe {
        #[serde(default, deserialize_with = "super::number")]
        seq: Option<u32>,
        #[serde(default, deserialize_with = "super::number")]
        time: Option<u64>,
        #[serde(default, deserialize_with = "super::number")]
        lat: Option<f64>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        let p = probe(r#"{"seq":"48374","time":1670574414123,"lat":"22.5"}"#).unwrap();
        assert_eq!(
            (p.seq, p.time, p.lat),
            (Some(48374), Some(1670574414123), Some(22.5))
        );
    }

    #[test]
    fn a_u32_above_two_to_the_31_is_taken() {
        assert_eq!(
            probe(r#"{"seq":3998651049}"#).unwrap().seq,
            Some(3_998_651_049)
        );
        assert_eq!(
            probe(r#"{"seq":"4294967295"}"#).unwrap().seq,
            Some(u32::MAX)
        );
    }

    #[test]
    fn a_u32_out_of_range_is_refused_naming_the_type() {
        let err = probe(r#"{"seq":4294967296}"#).unwrap_err().to_string();
        assert!(err.contains("u32"), "{err}");
        assert!(probe(r#"{"seq":-1}"#).is_err());
        assert!(probe(r#"{"seq":"seven"}"#).is_err());
    }

    #[test]
    fn null_and_absent_are_none() {
        let p = probe(r#"{"seq":null}"#).unwrap();
        assert_eq!((p.seq, p.time), (None, None));
    }
}
