//! Arithmetic that mixes `int`, `uint` and `double`, as users of JSON data expect.
//!
//! Strict CEL refuses `1 + 1.0` and `1 + 1u`, and cel 0.15 hard-wires the five arithmetic
//! operators in its interpreter (they dispatch through the operand's `Adder`, `Multiplier`, ...
//! traits, never through the `Env`'s overloads), so an overload for `_+_` would never be called.
//! Instead [`rewrite`] renames each arithmetic call in the parsed AST to one of the functions
//! below, which the root `Env` declares for `(dyn, dyn)`: they handle the numeric cases
//! themselves and hand every other combination (strings, bytes, lists, durations, timestamps)
//! back to the operand's own trait, so `'a' + 'b'` and `[1] + [2]` keep their CEL meaning.
//!
//! The names start with `@`, which no CEL identifier can, so expressions cannot call them.
//!
//! Comparisons (`<`, `<=`, `>`, `>=`) and equality (`==`, `!=`, `in`) already compare across
//! numeric kinds in cel 0.15 (`1 == 1.0`, `1u < 1.5`), so they are left alone.

use cel::common::ast::{Expr, operators};
use cel::common::types::{CelDouble, CelInt, CelUInt, DYN_TYPE, Kind};
use cel::common::value::{CowVal, Val};
use cel::objects::Value;
use cel::{Env, ExecutionError, IdedExpr};

/// The functions the arithmetic operators are renamed to, with the operator each replaces.
const FUNCTIONS: [(Op, &str, &str); 5] = [
    (Op::Add, operators::ADD, "@freshet_add"),
    (Op::Sub, operators::SUBSTRACT, "@freshet_sub"),
    (Op::Mul, operators::MULTIPLY, "@freshet_mul"),
    (Op::Div, operators::DIVIDE, "@freshet_div"),
    (Op::Rem, operators::MODULO, "@freshet_rem"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Op {
    /// The operator's name, as CEL's own errors report it (`_+_`).
    fn operator(self) -> &'static str {
        match self {
            Op::Add => operators::ADD,
            Op::Sub => operators::SUBSTRACT,
            Op::Mul => operators::MULTIPLY,
            Op::Div => operators::DIVIDE,
            Op::Rem => operators::MODULO,
        }
    }

    /// The short name CEL's `Overflow` and `UnsupportedBinaryOperator` errors carry.
    fn short(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Rem => "rem",
        }
    }
}

/// Declares the mixed-numeric arithmetic functions on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), cel::DeclarationError> {
    env.add_overload(
        "@freshet_add",
        "freshet_add_dyn_dyn",
        vec![DYN_TYPE, DYN_TYPE],
        add,
    )?;
    env.add_overload(
        "@freshet_sub",
        "freshet_sub_dyn_dyn",
        vec![DYN_TYPE, DYN_TYPE],
        sub,
    )?;
    env.add_overload(
        "@freshet_mul",
        "freshet_mul_dyn_dyn",
        vec![DYN_TYPE, DYN_TYPE],
        mul,
    )?;
    env.add_overload(
        "@freshet_div",
        "freshet_div_dyn_dyn",
        vec![DYN_TYPE, DYN_TYPE],
        div,
    )?;
    env.add_overload(
        "@freshet_rem",
        "freshet_rem_dyn_dyn",
        vec![DYN_TYPE, DYN_TYPE],
        rem,
    )
}

/// Renames `call` to its mixed-numeric function if it is a binary arithmetic operator.
///
/// The caller leaves alone the steps of a comprehension that add to its accumulator
/// (`@result + [x]`): cel recognises that exact shape to append in place, instead of copying
/// the list on every element, and those steps never mix numeric kinds.
pub(crate) fn rewrite(expr: &mut IdedExpr) {
    if let Expr::Call(call) = &mut expr.expr
        && call.target.is_none()
        && call.args.len() == 2
        && let Some((_, _, function)) = FUNCTIONS.iter().find(|(_, op, _)| *op == call.func_name)
    {
        call.func_name = (*function).to_owned();
    }
}

/// Whether `name` is one of the arithmetic operators [`rewrite`] handles.
pub(crate) fn is_arithmetic(name: &str) -> bool {
    FUNCTIONS.iter().any(|(_, op, _)| *op == name)
}

/// A numeric operand, widened to what the rule needs.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    UInt(u64),
    Double(f64),
}

fn num(val: &dyn Val) -> Option<Num> {
    match val.get_type().kind() {
        Kind::Int => val.downcast_ref::<CelInt>().map(|i| Num::Int(*i.inner())),
        Kind::UInt => val.downcast_ref::<CelUInt>().map(|u| Num::UInt(*u.inner())),
        Kind::Double => val
            .downcast_ref::<CelDouble>()
            .map(|d| Num::Double(*d.inner())),
        _ => None,
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::UInt(u) => u as f64,
        Num::Double(d) => d,
    }
}

fn value_of(n: Num) -> Value {
    match n {
        Num::Int(i) => Value::Int(i),
        Num::UInt(u) => Value::UInt(u),
        Num::Double(d) => Value::Float(d),
    }
}

fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    binary(Op::Add, args)
}

fn sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    binary(Op::Sub, args)
}

fn mul<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    binary(Op::Mul, args)
}

fn div<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    binary(Op::Div, args)
}

fn rem<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    binary(Op::Rem, args)
}

fn binary<'b, 'v>(op: Op, args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let count = args.len();
    let mut args = args.into_iter();
    let (Some(lhs), Some(rhs), None) = (args.next(), args.next(), args.next()) else {
        return Err(ExecutionError::invalid_argument_count(2, count));
    };
    match (num(lhs.as_ref()), num(rhs.as_ref())) {
        (Some(a), Some(b)) => numeric(op, a, b),
        (None, None) => standard(op, lhs, rhs),
        _ => Err(no_overload(op, lhs.as_ref(), rhs.as_ref())),
    }
}

/// The numeric rule: a `double` on either side makes both `double`s; otherwise two `uint`s stay
/// `uint` (as in CEL), and an `int` with a `uint` computes exactly and must fit an `int`.
fn numeric<'b, 'v>(op: Op, a: Num, b: Num) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let overflow = || ExecutionError::Overflow(op.short(), value_of(a), value_of(b));
    match (a, b) {
        (Num::Double(_), _) | (_, Num::Double(_)) => {
            let (x, y) = (as_f64(a), as_f64(b));
            let r = match op {
                Op::Add => x + y,
                Op::Sub => x - y,
                Op::Mul => x * y,
                // IEEE 754, as CEL's own double division: 1.0 / 0.0 is +Inf.
                Op::Div => x / y,
                // CEL has no double `%`; with the widening rule `7.5 % 2` must mean something,
                // and fmod's is the common one. A zero divisor would only give NaN.
                Op::Rem if y == 0.0 => return Err(ExecutionError::RemainderByZero(value_of(a))),
                Op::Rem => x % y,
            };
            Ok(CowVal::owned(CelDouble::from(r)))
        }
        (Num::UInt(x), Num::UInt(y)) => {
            let r = match op {
                Op::Add => x.checked_add(y),
                Op::Sub => x.checked_sub(y),
                Op::Mul => x.checked_mul(y),
                Op::Div if y == 0 => return Err(ExecutionError::DivisionByZero(value_of(a))),
                Op::Div => x.checked_div(y),
                Op::Rem if y == 0 => return Err(ExecutionError::RemainderByZero(value_of(a))),
                Op::Rem => x.checked_rem(y),
            };
            r.map(|r| CowVal::owned(CelUInt::from(r)))
                .ok_or_else(overflow)
        }
        _ => {
            // int with int, or int with uint: exact in i128, then it must fit an int.
            let wide = |n: Num| match n {
                Num::Int(i) => i128::from(i),
                Num::UInt(u) => i128::from(u),
                Num::Double(_) => 0,
            };
            let (x, y) = (wide(a), wide(b));
            let r = match op {
                Op::Add => x.checked_add(y),
                Op::Sub => x.checked_sub(y),
                Op::Mul => x.checked_mul(y),
                Op::Div if y == 0 => return Err(ExecutionError::DivisionByZero(value_of(a))),
                // Truncates toward zero, as CEL's (and Rust's) integer division does.
                Op::Div => x.checked_div(y),
                Op::Rem if y == 0 => return Err(ExecutionError::RemainderByZero(value_of(a))),
                Op::Rem => x.checked_rem(y),
            };
            r.and_then(|r| i64::try_from(r).ok())
                .map(|r| CowVal::owned(CelInt::from(r)))
                .ok_or_else(overflow)
        }
    }
}

/// Anything that is not two numbers: the left operand's own operator, as CEL would call it.
fn standard<'b, 'v>(
    op: Op,
    lhs: CowVal<'b, 'v>,
    rhs: CowVal<'b, 'v>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let rhs_ref = rhs.as_ref();
    let result = match op {
        Op::Add => lhs.as_adder().map(|t| t.add(rhs_ref)),
        Op::Sub => lhs.as_subtractor().map(|t| t.sub(rhs_ref)),
        Op::Mul => lhs.as_multiplier().map(|t| t.mul(rhs_ref)),
        Op::Div => lhs.as_divider().map(|t| t.div(rhs_ref)),
        Op::Rem => lhs.as_modder().map(|t| t.modulo(rhs_ref)),
    };
    match result {
        Some(Ok(value)) => Ok(CowVal::Owned(value.into_owned())),
        Some(Err(ExecutionError::UnsupportedBinaryOperator(..))) | None => {
            Err(no_overload(op, lhs.as_ref(), rhs_ref))
        }
        Some(Err(error)) => Err(error),
    }
}

/// The error CEL reports for a call no overload accepts, naming the operator and the types:
/// "found no matching overload for '_+_' applied to '(int, string)'".
fn no_overload(op: Op, lhs: &dyn Val, rhs: &dyn Val) -> ExecutionError {
    ExecutionError::no_such_overload(
        op.operator(),
        vec![
            lhs.get_type().name().to_owned(),
            rhs.get_type().name().to_owned(),
        ],
    )
}
