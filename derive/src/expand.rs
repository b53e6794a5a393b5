//! The derive itself: from the user's type to its kinds, their checked
//! topics, and the generated kind enum and impls.

use std::collections::HashMap;

use evbus_core::topic::validate_topic;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Attribute, Data, DeriveInput, Error, Ident, LitStr, Path, parse_quote};

use crate::{
    attrs::{Errors, EventAttrs, Place},
    naming::snake_case,
};

/// One kind of the user's type: a variant of an enum, or the struct itself.
struct Kind {
    /// The variant's name, also the kind's name.
    ident: Ident,
    /// The topic, checked.
    topic: String,
    /// Where the topic came from: the `topic` literal, or the variant's name
    /// when it was made from the prefix. Errors about the topic point here.
    span: Span,
    /// The variant's own docs, copied to the kind.
    docs: Vec<Attribute>,
}

/// Expands `#[derive(Event)]` on `input`.
pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let place = match &input.data {
        Data::Struct(_) => Place::Struct,
        Data::Enum(_) => Place::Enum,
        Data::Union(data) => {
            return Err(Error::new_spanned(
                data.union_token,
                "`#[derive(Event)]` supports structs and enums, not unions",
            ));
        }
    };
    let attrs = EventAttrs::parse(&input.attrs, place)?;
    let mut errors = Errors::default();
    let kinds = match &input.data {
        Data::Enum(data) => enum_kinds(input, &attrs, data, &mut errors)?,
        _ => vec![struct_kind(input, &attrs)?],
    };
    check_topics(&kinds, &mut errors);
    errors.finish(())?;
    let krate: Path = attrs.krate.clone().unwrap_or_else(|| parse_quote!(::evbus));
    let kind_enum = attrs
        .kind
        .clone()
        .unwrap_or_else(|| format_ident!("{}Kind", input.ident, span = input.ident.span()));
    Ok(generate(input, &krate, &kind_enum, &kinds))
}

/// The one kind of a struct.
fn struct_kind(input: &DeriveInput, attrs: &EventAttrs) -> syn::Result<Kind> {
    let ident = input.ident.clone();
    let (topic, span) = match (&attrs.topic, &attrs.prefix) {
        (Some(_), Some(prefix)) => {
            return Err(Error::new(
                prefix.span(),
                "a struct takes `topic` or `prefix`, not both",
            ));
        }
        (Some(topic), None) => (topic.value(), topic.span()),
        (None, Some(prefix)) => {
            check_prefix(prefix)?;
            (join(prefix, &ident), ident.span())
        }
        (None, None) => {
            return Err(Error::new(
                ident.span(),
                format!(
                    "struct `{ident}` has no topic: give it `#[event(topic = \"..\")]` \
                     or `#[event(prefix = \"..\")]`"
                ),
            ));
        }
    };
    Ok(Kind {
        ident,
        topic,
        span,
        docs: Vec::new(),
    })
}

/// The kinds of an enum, one per variant, in order. A variant whose topic
/// cannot be made is left out, and its error added to `errors`.
fn enum_kinds(
    input: &DeriveInput,
    attrs: &EventAttrs,
    data: &syn::DataEnum,
    errors: &mut Errors,
) -> syn::Result<Vec<Kind>> {
    if data.variants.is_empty() {
        return Err(Error::new(
            input.ident.span(),
            format!(
                "enum `{}` has no variants: `#[derive(Event)]` needs at least one kind",
                input.ident
            ),
        ));
    }
    // A broken prefix is reported once, at the prefix, and not again for
    // every variant that uses it.
    let prefix = match &attrs.prefix {
        Some(prefix) => match check_prefix(prefix) {
            Ok(()) => Some(Some(prefix)),
            Err(err) => {
                errors.push(err);
                None
            }
        },
        None => Some(None),
    };
    let mut kinds = Vec::with_capacity(data.variants.len());
    for variant in &data.variants {
        let ident = variant.ident.clone();
        let own = match EventAttrs::parse(&variant.attrs, Place::Variant) {
            Ok(own) => own,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        let (topic, span) = match (own.topic, prefix) {
            (Some(topic), _) => (topic.value(), topic.span()),
            (None, Some(Some(prefix))) => (join(prefix, &ident), ident.span()),
            // The prefix is broken and already reported.
            (None, None) => continue,
            (None, Some(None)) => {
                errors.push(Error::new(
                    ident.span(),
                    format!(
                        "variant `{ident}` has no topic: give it `#[event(topic = \"..\")]`, \
                         or give the enum `#[event(prefix = \"..\")]`"
                    ),
                ));
                continue;
            }
        };
        let docs = variant
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
            .cloned()
            .collect();
        kinds.push(Kind {
            ident,
            topic,
            span,
            docs,
        });
    }
    Ok(kinds)
}

/// `prefix.snake_case(ident)`.
fn join(prefix: &LitStr, ident: &Ident) -> String {
    format!("{}.{}", prefix.value(), snake_case(&ident.to_string()))
}

/// Checks that a prefix is itself a valid topic, so that every topic made
/// from it starts well.
fn check_prefix(prefix: &LitStr) -> syn::Result<()> {
    let text = prefix.value();
    validate_topic(&text).map_err(|err| {
        Error::new(
            prefix.span(),
            format!("event prefix {text:?} is invalid: {err}"),
        )
    })
}

/// The compile error for an invalid kind topic, worded as
/// `KindTableError::InvalidTopic` so that the compile-time and the run-time
/// check read the same. `None` if `topic` is valid.
fn invalid_topic_message(topic: &str) -> Option<String> {
    validate_topic(topic)
        .err()
        .map(|err| format!("kind topic {topic:?} is invalid: {err}"))
}

/// Checks every topic against the topic rules, and that no two kinds share
/// one; adds every problem found to `errors`.
fn check_topics(kinds: &[Kind], errors: &mut Errors) {
    let mut seen: HashMap<&str, &Ident> = HashMap::with_capacity(kinds.len());
    for kind in kinds {
        if let Some(message) = invalid_topic_message(&kind.topic) {
            errors.push(Error::new(kind.span, message));
        } else if let Some(first) = seen.insert(&kind.topic, &kind.ident) {
            errors.push(Error::new(
                kind.span,
                format!(
                    "two kinds share topic {:?}: `{first}` and `{}`",
                    kind.topic, kind.ident
                ),
            ));
        }
    }
}

/// The kind enum, its `EventKind` impl and the `Event` impl.
fn generate(input: &DeriveInput, krate: &Path, kind_enum: &Ident, kinds: &[Kind]) -> TokenStream {
    let ident = &input.ident;
    let vis = &input.vis;
    let enum_doc = format!(
        "The kinds of [`{ident}`], one per {}, each with its own topic.\n\n\
         Written by `#[derive(Event)]`, with its `EventKind` impl.",
        if matches!(input.data, Data::Enum(_)) {
            "variant"
        } else {
            "struct"
        },
    );
    let variants = kinds.iter().map(|kind| {
        let Kind {
            ident, topic, docs, ..
        } = kind;
        let topic_doc = format!("Topic `{topic}`.");
        let gap = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        quote! { #(#docs)* #gap #[doc = #topic_doc] #ident }
    });
    let all = kinds.iter().map(|kind| {
        let variant = &kind.ident;
        quote!(#kind_enum::#variant)
    });
    let topics = kinds.iter().map(|kind| {
        let (variant, topic) = (&kind.ident, &kind.topic);
        quote!(#kind_enum::#variant => #topic)
    });
    let kind_of = match &input.data {
        Data::Enum(_) => {
            let arms = kinds.iter().map(|kind| {
                let variant = &kind.ident;
                quote_spanned!(variant.span()=> Self::#variant { .. } => #kind_enum::#variant)
            });
            quote!(match self { #(#arms,)* })
        }
        _ => {
            let variant = &kinds[0].ident;
            quote!(#kind_enum::#variant)
        }
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[doc = #enum_doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #vis enum #kind_enum {
            #(#variants,)*
        }

        #[automatically_derived]
        impl #krate::EventKind for #kind_enum {
            const ALL: &'static [Self] = &[#(#all,)*];

            fn topic(self) -> &'static str {
                match self {
                    #(#topics,)*
                }
            }

            fn index(self) -> usize {
                self as usize
            }
        }

        #[automatically_derived]
        impl #impl_generics #krate::Event for #ident #ty_generics #where_clause {
            type Kind = #kind_enum;

            fn kind(&self) -> #kind_enum {
                #kind_of
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use evbus_core::{KindTableError, topic::validate_topic};

    use super::*;

    /// The compile-time message and the run-time one are the same text, for
    /// topics that break each rule and for topics that break none.
    #[test]
    fn invalid_topic_message_matches_kind_table_error() {
        let long = "a".repeat(300);
        let deep = vec!["a"; 40].join(".");
        let cases = [
            "orders.placed",
            "a",
            "sensor-7.temp_c",
            "",
            ".a",
            "a.",
            "a..b",
            "a b",
            "a.b$",
            "caf\u{e9}.x",
            "a.*",
            "a.>",
            ">",
            "a.b*",
            long.as_str(),
            deep.as_str(),
        ];
        for topic in cases {
            let leaked: &'static str = Box::leak(topic.into());
            let runtime = validate_topic(topic)
                .err()
                .map(|err| KindTableError::InvalidTopic(leaked, err).to_string());
            assert_eq!(invalid_topic_message(topic), runtime, "{topic:?}");
        }
    }

    fn expand(input: DeriveInput) -> Result<String, Vec<String>> {
        derive(&input)
            .map(|tokens| tokens.to_string())
            .map_err(|err| err.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn enum_topics_come_from_the_prefix_unless_given() {
        let out = expand(parse_quote! {
            #[event(prefix = "plan")]
            enum Plan { Created, PhaseChanged { phase: u8 }, #[event(topic = "x.y")] Cancelled(u64) }
        })
        .unwrap();
        assert!(
            out.contains(r#"PlanKind :: Created => "plan.created""#),
            "{out}"
        );
        assert!(out.contains(r#"PlanKind :: PhaseChanged => "plan.phase_changed""#));
        assert!(out.contains(r#"PlanKind :: Cancelled => "x.y""#));
        assert!(out.contains("impl :: evbus :: Event for Plan"));
    }

    #[test]
    fn crate_and_kind_names_can_be_changed() {
        let out = expand(parse_quote! {
            #[event(topic = "a.b", crate = "evbus_core", kind = "Beat")]
            pub struct Heartbeat;
        })
        .unwrap();
        assert!(out.contains("pub enum Beat"), "{out}");
        assert!(out.contains("impl evbus_core :: EventKind for Beat"));
        assert!(out.contains(r#"Beat :: Heartbeat => "a.b""#));
    }

    #[test]
    fn every_problem_is_reported() {
        let errors = expand(parse_quote! {
            enum E {
                #[event(topic = "a..b")] A,
                B,
                #[event(topic = "c.d")] C,
                #[event(topic = "c.d")] D,
            }
        })
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "variant `B` has no topic: give it `#[event(topic = \"..\")]`, \
                 or give the enum `#[event(prefix = \"..\")]`",
                "kind topic \"a..b\" is invalid: topic segment 1 is empty",
                "two kinds share topic \"c.d\": `C` and `D`",
            ]
        );
    }

    #[test]
    fn a_broken_prefix_is_reported_once() {
        let errors = expand(parse_quote! {
            #[event(prefix = "plan.")]
            enum E { A, B, #[event(topic = "ok.c")] C }
        })
        .unwrap_err();
        assert_eq!(
            errors,
            ["event prefix \"plan.\" is invalid: topic segment 1 is empty"]
        );
    }
}
