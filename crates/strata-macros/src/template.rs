//! Key, pattern and tag templates: literal text with `{name}` or `{name.field.field}`
//! placeholders, `{{` and `}}` for braces.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, LitStr, Member};

use crate::args::list;

/// How a placeholder's value is written into the text.
#[derive(Clone, Copy)]
pub(crate) enum Escape {
    /// Displayed and escaped as one key part, as `strata::key!` and event rules write it.
    Key,
    /// As [`Escape::Key`], then escaped for the glob language: it matches only itself.
    Glob,
    /// Displayed as it is (tags).
    Raw,
}

enum Piece {
    Text(String),
    Placeholder { root: String, fields: Vec<String> },
}

/// A parsed template, with the literal it came from (for spans).
pub(crate) struct Template {
    lit: LitStr,
    pieces: Vec<Piece>,
}

/// The parameters of the function a template may name.
pub(crate) struct Params {
    pub(crate) function: String,
    pub(crate) names: Vec<String>,
}

impl Params {
    pub(crate) fn of(sig: &syn::Signature) -> Self {
        let mut names = Vec::new();
        for input in &sig.inputs {
            match input {
                syn::FnArg::Receiver(_) => names.push("self".to_owned()),
                syn::FnArg::Typed(typed) => bindings(&typed.pat, &mut names),
            }
        }
        Params {
            function: sig.ident.to_string(),
            names,
        }
    }
}

/// The names a parameter's pattern binds.
fn bindings(pat: &syn::Pat, out: &mut Vec<String>) {
    match pat {
        syn::Pat::Ident(ident) => {
            out.push(ident.ident.to_string());
            if let Some((_, sub)) = &ident.subpat {
                bindings(sub, out);
            }
        }
        syn::Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| bindings(p, out)),
        syn::Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| bindings(p, out)),
        syn::Pat::Struct(s) => s.fields.iter().for_each(|f| bindings(&f.pat, out)),
        syn::Pat::Slice(slice) => slice.elems.iter().for_each(|p| bindings(p, out)),
        syn::Pat::Reference(r) => bindings(&r.pat, out),
        syn::Pat::Paren(p) => bindings(&p.pat, out),
        syn::Pat::Type(t) => bindings(&t.pat, out),
        _ => {}
    }
}

fn is_name(segment: &str) -> bool {
    let mut chars = segment.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && segment != "_"
}

fn is_index(segment: &str) -> bool {
    !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'))
        && segment.parse::<u32>().is_ok()
}

impl Template {
    /// Parses `lit`, a template given as `what` (for messages: "the key", "`patterns`"),
    /// and checks that every placeholder names one of `params`.
    pub(crate) fn parse(lit: &LitStr, what: &str, params: &Params) -> syn::Result<Self> {
        let text = lit.value();
        let error = |message: String| Err(syn::Error::new(lit.span(), message));
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut inside = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inside.push(c),
                            None => {
                                return error(format!(
                                    "unclosed `{{` in {what}: a placeholder is `{{name}}`, \
                                     and `{{{{` writes a brace"
                                ))
                            }
                        }
                    }
                    if inside.trim().is_empty() {
                        return error(format!(
                            "empty placeholder `{{}}` in {what}: name a parameter, as in `{{id}}`"
                        ));
                    }
                    let mut segments = inside.split('.');
                    let root = segments.next().unwrap_or_default().to_owned();
                    let fields: Vec<String> = segments.map(str::to_owned).collect();
                    if !is_name(&root) || !fields.iter().all(|f| is_name(f) || is_index(f)) {
                        return error(format!(
                            "bad placeholder `{{{inside}}}` in {what}: a placeholder is a \
                             parameter's name, with fields if need be: `{{id}}`, `{{user.id}}`, \
                             `{{self.id}}`"
                        ));
                    }
                    if !params.names.contains(&root) {
                        let names = params.names.iter().map(String::as_str);
                        let has = match params.names.len() {
                            0 => "it has no parameters".to_owned(),
                            1 => format!("its parameter is {}", list(names)),
                            _ => format!("its parameters are {}", list(names)),
                        };
                        return error(format!(
                            "unknown placeholder `{{{inside}}}` in {what}: `{}` has no \
                             parameter `{root}` ({has})",
                            params.function
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder { root, fields });
                }
                '}' => return error(format!("unmatched `}}` in {what}: `}}}}` writes a brace")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template {
            lit: lit.clone(),
            pieces,
        })
    }

    /// An expression of type `String`: the template with its placeholders' values. The
    /// values are borrowed, so it can run before the body takes the arguments.
    pub(crate) fn render(&self, escape: Escape) -> TokenStream {
        let span = self.lit.span();
        let mut format = String::new();
        let mut values = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => {
                    format.push_str(&text.replace('{', "{{").replace('}', "}}"));
                }
                Piece::Placeholder { root, fields } => {
                    format.push_str("{}");
                    let value = place(root, fields, span);
                    let part = quote_spanned! {span=>
                        ::strata::key::join([&(#value) as &dyn ::std::fmt::Display])
                    };
                    values.push(match escape {
                        Escape::Key => part,
                        Escape::Glob => quote_spanned! {span=>
                            ::strata::cached::__private::glob_escaped(&#part)
                        },
                        Escape::Raw => quote_spanned! {span=> &(#value) },
                    });
                }
            }
        }
        let format = LitStr::new(&format, span);
        if values.is_empty() {
            // Text only: no format! for clippy to call useless.
            let text: String = self
                .pieces
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Text(text) => Some(text.as_str()),
                    Piece::Placeholder { .. } => None,
                })
                .collect();
            let text = LitStr::new(&text, span);
            return quote! { ::std::string::String::from(#text) };
        }
        quote! { ::std::format!(#format #(, #values)*) }
    }
}

/// The expression a placeholder reads: `root.field.field`.
fn place(root: &str, fields: &[String], span: Span) -> TokenStream {
    let root = Ident::new(root, span);
    let fields = fields.iter().map(|field| match field.parse::<u32>() {
        Ok(index) => Member::Unnamed(syn::Index { index, span }),
        Err(_) => Member::Named(Ident::new(field, span)),
    });
    quote! { #root #(. #fields)* }
}
