//! The `#[cached]` and `#[invalidates]` attribute macros of strata. Use them through strata
//! (`strata::cached`, `strata::invalidates`, with its `macros` feature, on by default): the
//! code they write names `::strata`.
//!
//! Both keep their values in the process-wide store of `strata::cached::global()`, in the
//! namespace they name; see that module for how the store is built or given, and
//! docs/design.md for why the macros work the way they do.

#![warn(missing_docs)]

mod args;
mod template;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, ItemFn, LitStr, ReturnType, Type};

use args::{Args, Errors, Kind};
use template::{Escape, Params, Template};

/// Caches a function's values in a namespace of strata's global store, by a key made from
/// its arguments.
///
/// ```
/// use strata::cached;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct User {
///     id: u64,
///     name: String,
/// }
///
/// impl strata::HeapSize for User {
///     fn heap_size(&self) -> usize {
///         self.name.heap_size()
///     }
/// }
///
/// #[cached(namespace = "user", ttl = "10m", key = "user::{id}")]
/// fn get_user(id: u64) -> Result<User, std::io::Error> {
///     println!("SELECT … WHERE id = {id}"); // once: the second call is a hit
///     Ok(User { id, name: format!("user {id}") })
/// }
///
/// assert_eq!(get_user(42)?, get_user(42)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// It goes on `fn` and `async fn`, free functions and methods (`&self` included). The body
/// runs in the caller's own future or thread, never spawned, so it may borrow its arguments.
///
/// # Arguments
/// - `namespace = "name"` (required): the namespace of `strata::cached::global()` the
///   values live in; lowercase letters, digits, `_` and `-`. It is declared at link time,
///   so the global store always has it.
/// - `key = "template"` (required): the cache key. Literal text with `{name}` or
///   `{name.field.field}` placeholders, each naming a parameter (or `self`); `{{` and `}}`
///   write braces. Each value is written with `Display` and escaped as one key part (`:` is
///   `%3A`, `%` is `%25`), as `strata::key!` and event rules write them, so two argument
///   lists never make the same key.
/// - `ttl = "10m"` (optional): how long a value lives, in humantime's syntax (`"30s"`,
///   `"1h 30m"`), checked at compile time. Without it, the namespace's TTL applies.
/// - `cache_errors` (optional, for functions returning a `Result`): cache the errors too.
///
/// # What is cached
/// A function returning `Result<T, E>` (any type whose name is `Result`) caches its `Ok`
/// values; an error goes to its caller and the next call runs the body again. With
/// `cache_errors` the whole `Result` is cached, and `E` must be `Clone + Send + Sync`. Any
/// other return type is cached as it is. Cached values are `Clone + Send + Sync + 'static`
/// and implement `strata::HeapSize` (it weighs them against the namespace's byte bound).
///
/// # Concurrency
/// Single flight: of the calls that miss a key together, one runs the body and the others
/// wait for its value. If it fails, each waiter runs the body itself (an error is not
/// shared: it need not be `Clone`); if it is cancelled or panics, a waiter takes over. A
/// panic goes on unwinding into the caller whose body panicked.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    match expand_cached(attr.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        Err(error) => with_error(error, item),
    }
}

/// Invalidates keys, glob patterns and tags of strata's global store once the function has
/// succeeded (returned a value that is not an `Err`).
///
/// ```
/// use strata::{cached, invalidates};
///
/// #[cached(namespace = "user", key = "user::{id}::name")]
/// fn user_name(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// #[invalidates(namespace = "user", keys = ["user::{id}::name"], patterns = ["user::{id}::*"])]
/// fn rename_user(id: u64, name: &str) -> Result<(), std::io::Error> {
///     println!("UPDATE … SET name = {name:?} WHERE id = {id}");
///     Ok(())
/// }
///
/// user_name(42);
/// rename_user(42, "Ada")?; // drops user::42::name: the next user_name(42) runs its body
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// The texts are rendered from the arguments before the body runs (the body may take
/// them), and applied after it returns: not at all if it returned an `Err` (for a return
/// type named `Result`), else always.
///
/// # Arguments
/// - `namespace = "name"` (optional): where `keys` and `patterns` apply; every namespace
///   without it.
/// - `keys = ["template", ...]`: keys to drop.
/// - `patterns = ["template", ...]`: glob patterns (Redis `MATCH` syntax) whose keys to
///   drop. A placeholder's value is escaped so that it matches only itself: a `*` in it
///   is a `*`, not a wildcard.
/// - `tags = ["template", ...]`: tags to invalidate, store-wide (their values as they are).
///
/// At least one of `keys`, `patterns` and `tags` is required. Templates are written as for
/// `#[cached]`'s `key`, and key and pattern placeholders are escaped the same way, so the
/// same template names the same key.
#[proc_macro_attribute]
pub fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    match expand_invalidates(attr.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        Err(error) => with_error(error, item),
    }
}

/// The error, and the item as it was (so that its users do not get errors of their own).
fn with_error(error: syn::Error, item: TokenStream2) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item).into()
}

fn expand_cached(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let function = parse_fn(item, "cached")?;
    let args = Args::parse(
        attr,
        "cached",
        &[
            ("namespace", Kind::Str),
            ("key", Kind::Str),
            ("ttl", Kind::Str),
            ("cache_errors", Kind::Flag),
        ],
    )?;
    let sig = &function.sig;
    let params = Params::of(sig);
    let mut errors = Errors::default();

    let namespace = match args.str("namespace") {
        Some(lit) => check_namespace(lit, &mut errors),
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[cached] needs `namespace = \"...\"`: the namespace of the global store \
                 its values live in",
            ));
            None
        }
    };
    let key = match args.str("key") {
        Some(lit) => keep(Template::parse(lit, "the key", &params), &mut errors),
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[cached] needs `key = \"...\"`: the cache key, made from the arguments, \
                 such as `key = \"user::{id}\"`",
            ));
            None
        }
    };
    let ttl_nanos = match args.str("ttl") {
        Some(lit) => keep(ttl_nanos(lit), &mut errors).unwrap_or(0),
        None => 0,
    };
    let returned = match returned(sig) {
        Some(ty) => Some(ty),
        None => {
            let span = match &sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => sig.ident.span(),
            };
            errors.push(syn::Error::new(
                span,
                "a #[cached] function must return the value to cache",
            ));
            None
        }
    };
    let fallible = returned.is_some_and(is_result);
    if let (Some(flag), Some(_), false) = (args.flag("cache_errors"), returned, fallible) {
        errors.push(syn::Error::new(
            flag.span(),
            format!(
                "`cache_errors` is only for functions returning a `Result`: every value \
                 `{}` returns is cached already",
                sig.ident.unraw()
            ),
        ));
    }
    errors.finish()?;
    let (Some(namespace), Some(key), Some(returned)) = (namespace, key, returned) else {
        // Unreachable: each None pushed an error above.
        return Err(syn::Error::new(
            Span::call_site(),
            "#[cached]: bad arguments",
        ));
    };

    let mode = Ident::new(
        match (fallible, args.flag("cache_errors").is_some()) {
            (false, _) => "Plain",
            (true, false) => "Fallible",
            (true, true) => "CacheErrors",
        },
        returned.span(),
    );
    let private = quote!(::strata::cached::__private);
    let function_name = function_name(sig);
    let site = Ident::new("__STRATA_SITE", Span::mixed_site());
    let key_var = Ident::new("__strata_key", Span::mixed_site());
    let key = key.render(Escape::Key);
    let ttl = proc_macro2::Literal::u64_suffixed(ttl_nanos);
    let ret = turbofish_type(returned);
    let block = &function.block;
    // Spanned at the return type: a value type that cannot be cached (not `Clone`, no
    // `HeapSize`) is reported there.
    let call = if sig.asyncness.is_some() {
        quote_spanned! {returned.span()=>
            ::strata::cached::__private::cached_async::<
                ::strata::cached::__private::#mode, #ret, _
            >(&#site, #key_var, async move #block).await
        }
    } else {
        quote_spanned! {returned.span()=>
            ::strata::cached::__private::cached_sync::<::strata::cached::__private::#mode, #ret>(
                &#site, #key_var, move || #block
            )
        }
    };
    let declare = declare(&namespace, &function_name);
    let body = quote! {
        #declare
        static #site: #private::Site = #private::Site::new(#namespace, #function_name, #ttl);
        let #key_var: ::std::string::String = #key;
        #call
    };
    Ok(rebuild(&function, body))
}

fn expand_invalidates(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let function = parse_fn(item, "invalidates")?;
    let args = Args::parse(
        attr,
        "invalidates",
        &[
            ("namespace", Kind::Str),
            ("keys", Kind::List),
            ("patterns", Kind::List),
            ("tags", Kind::List),
        ],
    )?;
    let sig = &function.sig;
    let params = Params::of(sig);
    let mut errors = Errors::default();

    let namespace = args
        .str("namespace")
        .map(|lit| check_namespace(lit, &mut errors));
    let mut templates = |name: &str, what: &str| -> Vec<Template> {
        args.list(name)
            .iter()
            .filter_map(|lit| keep(Template::parse(lit, what, &params), &mut errors))
            .collect()
    };
    let keys = templates("keys", "`keys`");
    let patterns = templates("patterns", "`patterns`");
    let tags = templates("tags", "`tags`");
    if ["keys", "patterns", "tags"]
        .iter()
        .all(|name| args.list(name).is_empty())
    {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[invalidates] has nothing to invalidate: give at least one of \
             `keys = [\"...\"]`, `patterns = [\"...\"]` and `tags = [\"...\"]`",
        ));
    }
    errors.finish()?;

    let private = quote!(::strata::cached::__private);
    let function_name = function_name(sig);
    let (declare, namespace) = match namespace.flatten() {
        Some(namespace) => (
            declare(&namespace, &function_name),
            quote!(::core::option::Option::Some(#namespace)),
        ),
        None => (quote!(), quote!(::core::option::Option::None)),
    };
    let keys = keys.iter().map(|t| t.render(Escape::Key));
    let patterns = patterns.iter().map(|t| t.render(Escape::Glob));
    let tags = tags.iter().map(|t| t.render(Escape::Raw));
    let [keys_var, patterns_var, tags_var, result] = [
        "__strata_keys",
        "__strata_patterns",
        "__strata_tags",
        "__strata_result",
    ]
    .map(|name| Ident::new(name, Span::mixed_site()));
    let returned = returned(sig);
    let ret = match returned {
        Some(ty) => turbofish_type(ty),
        None => quote!(()),
    };
    let block = &function.block;
    // The helpers pin the body's type to the declared one, so that `?` in it converts
    // into the function's error type.
    let run = if sig.asyncness.is_some() {
        quote! {
            fn __strata_body<R, F: ::core::future::Future<Output = R>>(body: F) -> F {
                body
            }
            let #result = __strata_body::<#ret, _>(async move #block).await;
        }
    } else {
        quote! {
            fn __strata_body<R, F: ::core::ops::FnOnce() -> R>(body: F) -> R {
                body()
            }
            let #result = __strata_body::<#ret, _>(move || #block);
        }
    };
    let apply = quote! {
        #private::invalidate(#namespace, #keys_var, #patterns_var, #tags_var);
    };
    let apply = if returned.is_some_and(is_result) {
        quote!(if #result.is_ok() { #apply })
    } else {
        apply
    };
    let body = quote! {
        #declare
        let #keys_var: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#keys),*];
        let #patterns_var: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#patterns),*];
        let #tags_var: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#tags),*];
        #run
        #apply
        #result
    };
    Ok(rebuild(&function, body))
}

/// The item as a function with a body, or why not.
fn parse_fn(item: TokenStream2, attr: &str) -> syn::Result<ItemFn> {
    let parsed = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Err(match syn::parse2::<syn::TraitItemFn>(item) {
                Ok(declared) if declared.default.is_none() => no_body(&declared, attr),
                _ => error,
            })
        }
    };
    let (what, span) = match parsed {
        syn::Item::Fn(function) => {
            if let Some(constness) = &function.sig.constness {
                return Err(syn::Error::new(
                    constness.span(),
                    format!("#[{attr}] cannot be used on a `const fn`"),
                ));
            }
            return Ok(function);
        }
        syn::Item::Struct(s) => ("a struct", s.ident.span()),
        syn::Item::Enum(e) => ("an enum", e.ident.span()),
        syn::Item::Union(u) => ("a union", u.ident.span()),
        syn::Item::Trait(t) => ("a trait", t.ident.span()),
        syn::Item::Impl(i) => ("an impl block", i.impl_token.span()),
        syn::Item::Mod(m) => ("a module", m.ident.span()),
        syn::Item::Const(c) => ("a const", c.ident.span()),
        syn::Item::Static(s) => ("a static", s.ident.span()),
        syn::Item::Type(t) => ("a type alias", t.ident.span()),
        syn::Item::Use(u) => ("a use declaration", u.use_token.span()),
        syn::Item::Verbatim(tokens) => match syn::parse2::<syn::TraitItemFn>(tokens) {
            // `fn name(..) -> T;` in a trait.
            Ok(declared) if declared.default.is_none() => return Err(no_body(&declared, attr)),
            _ => ("this item", Span::call_site()),
        },
        _ => ("this item", Span::call_site()),
    };
    Err(syn::Error::new(
        span,
        format!("#[{attr}] applies to functions (`fn` or `async fn`), not to {what}"),
    ))
}

fn no_body(declared: &syn::TraitItemFn, attr: &str) -> syn::Error {
    syn::Error::new(
        declared.sig.ident.span(),
        format!(
            "#[{attr}] needs a function with a body: put it on the method where it is \
             implemented"
        ),
    )
}

/// The namespace as a literal, if it is a valid name.
fn check_namespace(lit: &LitStr, errors: &mut Errors) -> Option<LitStr> {
    let name = lit.value();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Some(lit.clone())
    } else {
        errors.push(syn::Error::new(
            lit.span(),
            format!(
                "bad namespace name {name:?}: a namespace name is lowercase letters, digits, \
                 `_` and `-`"
            ),
        ));
        None
    }
}

/// The TTL given as text, in nanoseconds.
fn ttl_nanos(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let error = |why: String| {
        syn::Error::new(
            lit.span(),
            format!(
                "bad ttl {text:?}: {why}; write a duration such as \"30s\", \"10m\" or \"1h 30m\""
            ),
        )
    };
    let ttl = humantime::parse_duration(&text).map_err(|e| error(e.to_string()))?;
    if ttl.is_zero() {
        return Err(error(
            "it is zero (leave `ttl` out for the namespace's TTL)".to_owned(),
        ));
    }
    u64::try_from(ttl.as_nanos()).map_err(|_| error("it is too long (over 584 years)".to_owned()))
}

/// The declared return type, unless it is `()`.
fn returned(sig: &syn::Signature) -> Option<&Type> {
    match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => match strip(ty) {
            Type::Tuple(tuple) if tuple.elems.is_empty() => None,
            _ => Some(ty),
        },
    }
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip(&group.elem),
        Type::Paren(paren) => strip(&paren.elem),
        ty => ty,
    }
}

/// Whether the type's name is `Result` (`Result<T, E>`, `io::Result<T>`, ...).
fn is_result(ty: &Type) -> bool {
    match strip(ty) {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        _ => false,
    }
}

/// The type as a turbofish argument: `_` when it mentions `impl Trait`, which cannot be
/// written there.
fn turbofish_type(ty: &Type) -> TokenStream2 {
    fn has_impl(tokens: TokenStream2) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => has_impl(group.stream()),
            _ => false,
        })
    }
    if has_impl(ty.to_token_stream()) {
        quote!(_)
    } else {
        ty.to_token_stream()
    }
}

/// `"module::path::name"`, as an expression.
fn function_name(sig: &syn::Signature) -> TokenStream2 {
    let suffix = format!("::{}", sig.ident.unraw());
    quote!(::core::concat!(::core::module_path!(), #suffix))
}

/// Declares `namespace` at link time, so the global store has it.
fn declare(namespace: &LitStr, function: &TokenStream2) -> TokenStream2 {
    quote! {
        ::strata::cached::__private::inventory::submit! {
            ::strata::cached::__private::Declared { namespace: #namespace, function: #function }
        }
    }
}

/// The function with `body` for a body: its attributes, visibility and signature as they
/// were (inner attributes open the new body).
fn rebuild(function: &ItemFn, body: TokenStream2) -> TokenStream2 {
    let (inner, outer): (Vec<&Attribute>, Vec<&Attribute>) = function
        .attrs
        .iter()
        .partition(|attr| matches!(attr.style, syn::AttrStyle::Inner(_)));
    let vis = &function.vis;
    let sig = &function.sig;
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            #body
        }
    }
}

/// The value of `result`, after pushing its error if any.
fn keep<T>(result: syn::Result<T>, errors: &mut Errors) -> Option<T> {
    result.map_err(|error| errors.push(error)).ok()
}
