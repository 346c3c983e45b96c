//! The arguments of an attribute: `name = "text"`, `name = ["text", ...]` or a bare `name`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, Expr, Ident, LitStr, Token};

/// One argument as written.
pub(crate) struct Arg {
    pub(crate) name: Ident,
    pub(crate) value: Value,
}

/// What follows an argument's name.
pub(crate) enum Value {
    /// Nothing: a flag such as `cache_errors`.
    Flag,
    /// `= "text"`.
    Str(LitStr),
    /// `= ["text", ...]`; the span is the brackets'.
    List(Span, Vec<LitStr>),
    /// `= anything else`.
    Other(Expr),
}

impl Value {
    fn span(&self, name: &Ident) -> Span {
        match self {
            Value::Flag => name.span(),
            Value::Str(lit) => lit.span(),
            Value::List(span, _) => *span,
            Value::Other(expr) => expr.span(),
        }
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Err(input.error(
                "the arguments are named: write `namespace = \"...\"`, `key = \"...\"` and so on",
            ));
        }
        // Keywords are accepted as names so that a misspelt one gets the "unknown
        // argument" message rather than a parse error.
        let name = input.call(Ident::parse_any)?;
        if !input.peek(Token![=]) {
            return Ok(Arg {
                name,
                value: Value::Flag,
            });
        }
        input.parse::<Token![=]>()?;
        let value = if input.peek(LitStr) {
            Value::Str(input.parse()?)
        } else if input.peek(syn::token::Bracket) {
            let content;
            let brackets = bracketed!(content in input);
            let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
            let mut strings = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(lit),
                        ..
                    }) => strings.push(lit),
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            format!("`{name}` takes a list of string literals"),
                        ))
                    }
                }
            }
            Value::List(brackets.span.join(), strings)
        } else {
            Value::Other(input.parse()?)
        };
        Ok(Arg { name, value })
    }
}

/// What an argument takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Flag,
    Str,
    List,
}

/// The arguments of one attribute, checked against what it takes.
pub(crate) struct Args {
    args: Vec<Arg>,
}

impl Args {
    /// Parses `tokens` and checks every name against `known` (name and kind) for the
    /// attribute `attr`; reports every problem at once.
    pub(crate) fn parse(
        tokens: proc_macro2::TokenStream,
        attr: &str,
        known: &[(&str, Kind)],
    ) -> syn::Result<Self> {
        let parsed =
            syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens)?;
        let mut errors = Errors::default();
        let mut args: Vec<Arg> = Vec::new();
        for arg in parsed {
            let name = arg.name.to_string();
            let Some(&(_, kind)) = known.iter().find(|(known, _)| *known == name) else {
                errors.push(syn::Error::new(
                    arg.name.span(),
                    format!(
                        "unknown argument `{name}`: #[{attr}] takes {}",
                        list(known.iter().map(|(name, _)| *name))
                    ),
                ));
                continue;
            };
            if args.iter().any(|a| a.name == arg.name) {
                errors.push(syn::Error::new(
                    arg.name.span(),
                    format!("`{name}` is given twice"),
                ));
                continue;
            }
            let fits = matches!(
                (kind, &arg.value),
                (Kind::Flag, Value::Flag)
                    | (Kind::Str, Value::Str(_))
                    | (Kind::List, Value::List(..))
            );
            if !fits {
                let expected = match kind {
                    Kind::Flag => format!("`{name}` is a flag and takes no value: write `{name}`"),
                    Kind::Str => format!("`{name}` takes a string literal: `{name} = \"...\"`"),
                    Kind::List => format!(
                        "`{name}` takes a list of string literals: `{name} = [\"...\", \"...\"]`"
                    ),
                };
                errors.push(syn::Error::new(arg.value.span(&arg.name), expected));
                continue;
            }
            args.push(arg);
        }
        errors.finish()?;
        Ok(Args { args })
    }

    /// The string given as `name`, if any.
    pub(crate) fn str(&self, name: &str) -> Option<&LitStr> {
        self.args.iter().find_map(|arg| match &arg.value {
            Value::Str(lit) if arg.name == name => Some(lit),
            _ => None,
        })
    }

    /// The strings given as `name` (none if it was not given).
    pub(crate) fn list(&self, name: &str) -> &[LitStr] {
        self.args
            .iter()
            .find_map(|arg| match &arg.value {
                Value::List(_, items) if arg.name == name => Some(items.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// The flag `name`, if given.
    pub(crate) fn flag(&self, name: &str) -> Option<&Ident> {
        self.args
            .iter()
            .find(|arg| arg.name == name && matches!(arg.value, Value::Flag))
            .map(|arg| &arg.name)
    }
}

/// `a`, `b` and `c`.
pub(crate) fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Several errors reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
