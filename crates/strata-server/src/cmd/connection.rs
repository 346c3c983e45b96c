//! Connection commands.
//!
//! ```text
//! PING [message]                             PONG, or the message
//! ECHO message                               the message
//! HELLO [2|3 [AUTH user pass] [SETNAME name]]    a map about the server; switches protocol
//! AUTH [user] password                       OK, or WRONGPASS
//! SELECT 0                                   OK (database 0 is the only one)
//! CLIENT SETNAME name | GETNAME | SETINFO LIB-NAME|LIB-VER value | ID
//! QUIT                                       OK, then the server closes the connection
//! RESET                                      RESET: protocol 2, no name, logged out
//! ```

use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::parse::Parse;
use super::{is, CommandResult, Ctx, Error, SYNTAX};
use crate::resp::{Frame, Protocol};

pub(crate) fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match args.len() {
        1 => ctx.simple("PONG"),
        2 => ctx.bulk(&args[1]),
        _ => {
            return Err(Error::new(
                "ERR wrong number of arguments for 'ping' command",
            ))
        }
    }
    Ok(())
}

pub(crate) fn echo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    ctx.bulk(&args[1]);
    Ok(())
}

/// Checks a user and password against `[server] password`.
/// Without a password configured the default user needs none (Redis's `nopass`): any
/// password for `default` is accepted, and only `AUTH <password>` alone is an error.
fn check_password(ctx: &mut Ctx<'_>, user: &[u8], password: &[u8]) -> CommandResult {
    let Some(expected) = &ctx.shared.password else {
        if user == b"default" {
            return Ok(());
        }
        return Err(Error::new(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    };
    // In time independent of where the first difference is (as the admin API compares its
    // tokens), so the time taken says nothing about how much of a guess was right.
    if user == b"default" && bool::from(password.ct_eq(expected.expose().as_bytes())) {
        ctx.client.authenticated = true;
        Ok(())
    } else {
        Err(Error::new(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

/// `AUTH <password>`: an error when no password is configured, as in Redis.
fn check_lone_password(ctx: &mut Ctx<'_>, password: &[u8]) -> CommandResult {
    if ctx.shared.password.is_none() {
        return Err(Error::new(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ));
    }
    check_password(ctx, b"default", password)
}

pub(crate) fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match args.len() {
        2 => check_lone_password(ctx, &args[1])?,
        3 => check_password(ctx, &args[1], &args[2])?,
        _ => return Err(SYNTAX),
    }
    ctx.ok();
    Ok(())
}

pub(crate) fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let mut given = Parse::new(args, 1);
    let mut proto = ctx.client.proto;
    if let Some(version) = given.next_arg() {
        proto = match crate::resp::parse_integer(version) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Err(Error::new("NOPROTO unsupported protocol version")),
            None => {
                return Err(Error::new(
                    "ERR Protocol version is not an integer or out of range",
                ))
            }
        };
    }
    // Every option is read before any takes effect, so a bad one changes nothing.
    let mut name = None;
    let mut credentials = None;
    // An option without all its values is named in HELLO's own error, not a syntax error.
    while let Some(option) = given.next_arg() {
        if is(option, "AUTH") && given.remaining() >= 2 {
            credentials = Some((given.next_bytes()?, given.next_bytes()?));
        } else if is(option, "SETNAME") && !given.is_done() {
            let wanted = given.next_bytes()?;
            check_name(wanted)?;
            name = Some(wanted);
        } else {
            return Err(Error::new(format!(
                "ERR Syntax error in HELLO option '{}'",
                super::printable(option, 128)
            )));
        }
    }
    if let Some((user, password)) = credentials {
        check_password(ctx, user, password)?;
    }
    if !ctx.client.authenticated {
        return Err(Error::new(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = name {
        ctx.client.name = kept(name);
    }
    ctx.client.proto = proto;
    let text = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let reply = Frame::Map(vec![
        (text("server"), text("strata")),
        (text("version"), text(crate::REDIS_VERSION)),
        (
            text("proto"),
            Frame::Integer(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (text("id"), Frame::Integer(ctx.client.id as i64)),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Frame::Array(Vec::new())),
    ]);
    ctx.frame(&reply);
    Ok(())
}

pub(crate) fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    match super::int(&args[1])? {
        0 => {
            ctx.ok();
            Ok(())
        }
        _ => Err(Error::new("ERR DB index is out of range")),
    }
}

/// A client name to keep (none for an empty one), copied: an argument is a slice of the
/// read buffer, which a name kept for the connection's life must not pin.
fn kept(name: &[u8]) -> Option<Bytes> {
    (!name.is_empty()).then(|| Bytes::copy_from_slice(name))
}

/// Client names are printable ASCII without spaces (Redis's rule).
fn check_name(name: &[u8]) -> CommandResult {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(Error::new(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

pub(crate) fn client(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let sub = &args[1];
    let arity = |n: usize| -> CommandResult {
        if args.len() == n {
            Ok(())
        } else {
            Err(Error::new(format!(
                "ERR wrong number of arguments for 'client|{}' command",
                super::printable(sub, 64).to_ascii_lowercase()
            )))
        }
    };
    if is(sub, "SETNAME") {
        arity(3)?;
        check_name(&args[2])?;
        ctx.client.name = kept(&args[2]);
        ctx.ok();
    } else if is(sub, "GETNAME") {
        arity(2)?;
        let name = ctx.client.name.clone();
        ctx.bulk_or_null(name.as_deref());
    } else if is(sub, "ID") {
        arity(2)?;
        ctx.int(ctx.client.id as i64);
    } else if is(sub, "SETINFO") {
        arity(4)?;
        let value = &args[3];
        if is(&args[2], "LIB-NAME") {
            check_name(value)?;
            ctx.client.lib_name = Some(Bytes::copy_from_slice(value));
        } else if is(&args[2], "LIB-VER") {
            check_name(value)?;
            ctx.client.lib_ver = Some(Bytes::copy_from_slice(value));
        } else {
            return Err(Error::new(format!(
                "ERR Unrecognized option '{}'",
                super::printable(&args[2], 128)
            )));
        }
        ctx.ok();
    } else {
        return Err(Error::new(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            super::printable(sub, 128)
        )));
    }
    Ok(())
}

pub(crate) fn quit(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CommandResult {
    ctx.ok();
    ctx.client.closing = true;
    Ok(())
}

pub(crate) fn reset(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CommandResult {
    ctx.client.proto = Protocol::Resp2;
    ctx.client.name = None;
    ctx.client.lib_name = None;
    ctx.client.lib_ver = None;
    ctx.client.authenticated = ctx.shared.password.is_none();
    ctx.simple("RESET");
    Ok(())
}
