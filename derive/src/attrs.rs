//! The `#[event(..)]` attributes: parsed, with every key checked against the
//! place it is written.

use syn::{Attribute, Ident, LitStr, Path, meta::ParseNestedMeta};

/// Where an `#[event(..)]` attribute is written; each place allows its own
/// keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Struct,
    Enum,
    Variant,
}

impl Place {
    /// The keys allowed here, for error messages and checks.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Place::Struct => &["topic", "prefix", "kind", "crate"],
            Place::Enum => &["prefix", "kind", "crate"],
            Place::Variant => &["topic"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Place::Struct => "a struct",
            Place::Enum => "an enum",
            Place::Variant => "a variant",
        }
    }
}

/// Every key any place allows; a key outside this list is unknown.
const ALL_KEYS: [&str; 4] = ["topic", "prefix", "kind", "crate"];

/// The keys given in the `#[event(..)]` attributes of one place.
#[derive(Default)]
pub(crate) struct EventAttrs {
    /// `topic = "a.b"`.
    pub(crate) topic: Option<LitStr>,
    /// `prefix = "a"`.
    pub(crate) prefix: Option<LitStr>,
    /// `kind = "Name"`.
    pub(crate) kind: Option<Ident>,
    /// `crate = "path"`.
    pub(crate) krate: Option<Path>,
}

impl EventAttrs {
    /// Parses the `#[event(..)]` attributes among `attrs`, for `place`.
    ///
    /// Reports every unknown, misplaced or repeated key, not only the first.
    pub(crate) fn parse(attrs: &[Attribute], place: Place) -> syn::Result<Self> {
        let mut out = EventAttrs::default();
        let mut errors = Errors::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("event")) {
            let parsed = attr.parse_nested_meta(|meta| {
                out.key(&meta, place, &mut errors)?;
                Ok(())
            });
            if let Err(err) = parsed {
                errors.push(err);
            }
        }
        errors.finish(out)
    }

    /// Parses one `key = value` of an `#[event(..)]` list.
    fn key(
        &mut self,
        meta: &ParseNestedMeta<'_>,
        place: Place,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !ALL_KEYS.contains(&key.as_str()) {
            let name = quote::ToTokens::to_token_stream(&meta.path).to_string();
            return Err(meta.error(format!(
                "unknown event attribute `{name}`; expected {}",
                expected(place.keys())
            )));
        }
        // The value is parsed before any placement check, so that a
        // misplaced key does not also break the parse of the keys after it.
        let value: LitStr = meta.value()?.parse()?;
        if !place.keys().contains(&key.as_str()) {
            errors.push(meta.error(format!(
                "`{key}` is not allowed on {}; expected {}",
                place.name(),
                expected(place.keys())
            )));
            return Ok(());
        }
        let repeated = match key.as_str() {
            "topic" => self.topic.replace(value).is_some(),
            "prefix" => self.prefix.replace(value).is_some(),
            "kind" => self.kind.replace(value.parse()?).is_some(),
            _ => self.krate.replace(value.parse()?).is_some(),
        };
        if repeated {
            errors.push(meta.error(format!("duplicate event attribute `{key}`")));
        }
        Ok(())
    }
}

/// `a`, `a` or `b`, `a`, `b` or `c`: the list of keys for an error message.
fn expected(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Errors gathered so that one compile reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(err),
            None => self.0 = Some(err),
        }
    }

    /// `Ok(value)` if no error was pushed, else all the errors.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(err) => Err(err),
            None => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lists_keys_in_prose() {
        assert_eq!(expected(&["topic"]), "`topic`");
        assert_eq!(expected(&["prefix", "kind"]), "`prefix` or `kind`");
        assert_eq!(
            expected(&["topic", "prefix", "kind"]),
            "`topic`, `prefix` or `kind`"
        );
    }

    #[test]
    fn parses_every_key_on_a_struct() {
        let input: syn::DeriveInput = syn::parse_quote! {
            #[event(topic = "a.b", prefix = "p", kind = "K", crate = "evbus_core")]
            struct S;
        };
        let attrs = EventAttrs::parse(&input.attrs, Place::Struct).unwrap();
        assert_eq!(attrs.topic.unwrap().value(), "a.b");
        assert_eq!(attrs.prefix.unwrap().value(), "p");
        assert_eq!(attrs.kind.unwrap(), "K");
        assert!(attrs.krate.unwrap().is_ident("evbus_core"));
    }

    #[test]
    fn reports_every_bad_key() {
        let input: syn::DeriveInput = syn::parse_quote! {
            #[event(topic = "a", colour = "red")]
            #[event(prefix = "p", prefix = "q")]
            enum E { A }
        };
        let Err(err) = EventAttrs::parse(&input.attrs, Place::Enum) else {
            panic!("bad keys were accepted");
        };
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "`topic` is not allowed on an enum; expected `prefix`, `kind` or `crate`",
                "unknown event attribute `colour`; expected `prefix`, `kind` or `crate`",
                "duplicate event attribute `prefix`",
            ]
        );
    }
}
