//! The CEL expressions of declarative topologies (`filter: "value.amount >= 100"`).
//!
//! Expressions are compiled once, when the topology is built, and evaluated per record against
//! one shared [`ExprEnv`]. Compiling checks what cel itself only finds when an expression runs:
//! every variable must be one the step provides (a typo such as `vlaue.x` is rejected with its
//! line and column, not on the first record), and every function called must exist.
//!
//! # Variables
//!
//! [`Var`] lists them; each step kind allows its own subset. `key`, `value`, `left`, `right`
//! and `agg` are whatever the serdes produced (JSON becomes maps, lists, strings, numbers, see
//! [`json_to_value`]); `timestamp` is the record's timestamp in epoch milliseconds, an `int`;
//! `topic` a `string`; `partition` and `offset` `int`s. `headers` is a map from header name to
//! value, the value decoded as UTF-8 with invalid bytes replaced by U+FFFD (`null` for a header
//! without a value); when a name repeats, the last header wins, as Kafka's `Headers.lastHeader`.
//!
//! # Numbers
//!
//! JSON numbers have no int/double distinction, so strict CEL (no arithmetic across `int`,
//! `uint` and `double`) would make `value.amount * 2` fail whenever the producer wrote `150.0`.
//! Freshet's rule for `+ - * / %`:
//!
//! - if either operand is a `double`, both are converted to `double` and the result is a
//!   `double` (`value.id + 0.5 == 7.5`, `value.amount * 2 == 300.0`);
//! - otherwise an `int` with a `uint` computes exactly and gives an `int`, an error if the
//!   result does not fit an `i64`; `int` with `int` gives an `int` and `uint` with `uint` a
//!   `uint`, both erroring on overflow, as in CEL;
//! - integer division truncates toward zero, as in CEL: with `count = 3`, `value.count / 2 == 1`;
//!   write `value.count / 2.0` for `1.5`. Integer division or remainder by zero is an error;
//!   double division by zero gives ±infinity (IEEE 754, as in CEL), which cannot be written as
//!   JSON; double `%` is fmod (`7.5 % 2 == 1.5`), an error for a zero divisor.
//!
//! Comparisons and equality already compare numbers of any kind by value in cel 0.15:
//! `value.amount > 100`, `value.amount * 2 == 300` and `1 == 1u` hold.
//!
//! JSON integers are read as `int` when they fit an `i64` (they are what CEL literals are), else
//! `uint`, else `double`, so a big id mixes with `int` arithmetic under the rule above.
//!
//! # Functions
//!
//! The CEL standard library, with the `strings`, `math`, `lists` and `base64` extensions (the
//! ones Kubernetes' CEL also offers). Calling a function that does not exist is a compile error;
//! calling one with argument types it has no overload for is an evaluation error.
//!
//! # Threads
//!
//! [`Expr`] and [`ExprEnv`] are `Send + Sync`: a topology compiled once can be shared by all
//! stream threads; cloning an [`Expr`] is cheap (reference counted).

mod json;
mod numbers;
mod scope;

pub use json::{JsonError, json_to_value, value_to_json};

use cel::common::ast::{CallExpr, SourceInfo};
use cel::common::ast::{EntryExpr, Expr as Node, LiteralValue, operators};
use cel::common::types::CelBool;
use cel::{Context, Env, ExecutionError, IdedExpr, Value};
use std::fmt;
use std::sync::{Arc, LazyLock};

/// Variables an expression may reference, per step kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// `key`: the record's key.
    Key,
    /// `value`: the record's value.
    Value,
    /// `timestamp`: the record's timestamp, epoch milliseconds.
    Timestamp,
    /// `headers`: the record's headers.
    Headers,
    /// `topic`: the topic the record was read from.
    Topic,
    /// `partition`: the partition the record was read from.
    Partition,
    /// `offset`: the record's offset.
    Offset,
    /// `left`: a join's left value (the stream's, or this table's).
    Left,
    /// `right`: a join's right value (the other side's).
    Right,
    /// `agg`: the aggregate so far, in `aggregate` and `reduce`.
    Agg,
}

impl Var {
    /// Every variable, in declaration order.
    pub const ALL: [Var; 10] = [
        Var::Key,
        Var::Value,
        Var::Timestamp,
        Var::Headers,
        Var::Topic,
        Var::Partition,
        Var::Offset,
        Var::Left,
        Var::Right,
        Var::Agg,
    ];

    /// The name expressions use for it.
    pub fn name(self) -> &'static str {
        match self {
            Var::Key => "key",
            Var::Value => "value",
            Var::Timestamp => "timestamp",
            Var::Headers => "headers",
            Var::Topic => "topic",
            Var::Partition => "partition",
            Var::Offset => "offset",
            Var::Left => "left",
            Var::Right => "right",
            Var::Agg => "agg",
        }
    }

    /// The variable's bit in a set of variables.
    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The variable named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The one cel `Env` of the process: building it declares a few hundred overloads, which is
/// why cel 0.15's `Context::default()` per record runs at ~13k/s. Compiling (macros, function
/// checks) and evaluating use the same declarations.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    let declared = env
        .add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::math))
        .and_then(|()| env.add_extension(cel::extensions::lists))
        .and_then(|()| env.add_extension(cel::extensions::encoders))
        .and_then(|()| numbers::register(&mut env));
    // Fixed declarations, the same on every run: a conflict is a bug caught by any test.
    if let Err(error) = declared {
        panic!("declaring Freshet's CEL functions: {error}");
    }
    Arc::new(env)
});

/// Shared root context, built once per topology (registers functions once).
///
/// Each evaluation opens a cheap inner scope on it holding the record's variables.
pub struct ExprEnv {
    root: Context<'static, 'static>,
}

impl ExprEnv {
    /// The environment with Freshet's functions and types, and no variables bound.
    pub fn new() -> Self {
        ExprEnv {
            root: Context::with_env(Arc::clone(&ENV)),
        }
    }
}

impl Default for ExprEnv {
    fn default() -> Self {
        ExprEnv::new()
    }
}

impl fmt::Debug for ExprEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprEnv").finish_non_exhaustive()
    }
}

/// A compiled expression.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    ast: Arc<IdedExpr>,
    /// The variables the expression references: only those are converted per record.
    used: Arc<[Var]>,
    /// The variables (a bit each) the expression only indexes or selects fields of: a map bound
    /// to one is read in place, see `scope::Fields`.
    fields_only: u16,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expr")
            .field("source", &self.source)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// A Kafka record header: its name, and its value if it has one.
pub type Header = (String, Option<Vec<u8>>);

/// Borrowed per-record bindings; cheap to build per record.
///
/// A variable the expression references must be bound (`Some`): bind a null key as
/// `Value::Null`, not `None`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bindings<'a> {
    /// `key`, as JSON (`Value::Null` for a null key).
    pub key: Option<&'a Value>,
    /// `value`, as JSON (`Value::Null` for a null value).
    pub value: Option<&'a Value>,
    /// Epoch milliseconds.
    pub timestamp: Option<i64>,
    /// Name and raw value of each header, in record order; a Kafka header may have no value
    /// (`None`). The same shape as `processor::Headers`' contents, so binding them is free.
    pub headers: Option<&'a [Header]>,
    /// The topic the record was read from.
    pub topic: Option<&'a str>,
    /// The partition the record was read from.
    pub partition: Option<i32>,
    /// The record's offset in its partition.
    pub offset: Option<i64>,
    /// A join's left value.
    pub left: Option<&'a Value>,
    /// A join's right value.
    pub right: Option<&'a Value>,
    /// The aggregate so far.
    pub agg: Option<&'a Value>,
}

/// An expression that cannot be compiled; `line` and `column` are 1-based, the column counted
/// in characters.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("line {line}, column {column}: {message}")]
pub struct CompileError {
    /// 1-based line in the expression.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The CEL parser's or type checker's message.
    pub message: String,
}

/// An expression that failed on a record.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct EvalError {
    /// What failed, e.g. a missing field or a type mismatch at run time.
    pub message: String,
}

impl From<ExecutionError> for EvalError {
    fn from(error: ExecutionError) -> Self {
        EvalError {
            message: error.to_string(),
        }
    }
}

impl Expr {
    /// Parse + check: every variable referenced must be in `allowed` (a typo like `vlaue.x`
    /// fails here, not on the first record), and every function called must exist. Errors
    /// carry line and column (1-based) and a helpful message.
    pub fn compile(source: &str, allowed: &[Var]) -> Result<Expr, CompileError> {
        let (mut ast, info) = ENV
            .parser()
            .parse_with_source_info(source)
            .map_err(|errors| parse_error(source, errors))?;
        let mut checker = Checker {
            source,
            info: &info,
            allowed,
            used: Vec::new(),
            whole: 0,
            bound: Vec::new(),
            accumulators: Vec::new(),
            probe: Context::with_env(Arc::clone(&ENV)),
        };
        checker.visit(&mut ast)?;
        let fields_only =
            checker.used.iter().fold(0, |bits, var| bits | var.bit()) & !checker.whole;
        Ok(Expr {
            source: source.into(),
            ast: Arc::new(ast),
            used: checker.used.into(),
            fields_only,
        })
    }

    /// The keys of the map the expression builds, when it is a map literal with string keys
    /// (`{'id': value.id, ...}`): the fields it writes, for checking against an output schema.
    pub fn literal_map_keys(&self) -> Option<Vec<String>> {
        let Node::Map(map) = &self.ast.expr else {
            return None;
        };
        map.entries
            .iter()
            .map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => match &e.key.expr {
                    Node::Literal(LiteralValue::String(s)) => Some(s.to_string()),
                    _ => None,
                },
                EntryExpr::StructField(_) => None,
            })
            .collect()
    }

    /// The expression's text as written in the manifest.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the expression references, each once.
    pub fn variables(&self) -> &[Var] {
        &self.used
    }

    /// Evaluate with the bound variables; unbound allowed vars are errors at eval.
    pub fn eval(&self, env: &ExprEnv, bindings: &Bindings<'_>) -> Result<Value, EvalError> {
        let scope = scope::Scope::bind(&self.used, self.fields_only, bindings)?;
        let root: &Context<'_, '_> = &env.root;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(&scope);
        let result = Value::resolve_val(&self.ast, &ctx)?;
        Ok(Value::try_from(result.as_ref())?)
    }

    /// Convenience: evaluate and require a bool (filter/when); a non-bool result is an
    /// EvalError naming the type.
    pub fn eval_bool(&self, env: &ExprEnv, bindings: &Bindings<'_>) -> Result<bool, EvalError> {
        let scope = scope::Scope::bind(&self.used, self.fields_only, bindings)?;
        let root: &Context<'_, '_> = &env.root;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(&scope);
        let result = Value::resolve_val(&self.ast, &ctx)?;
        match result.downcast_ref::<CelBool>() {
            Some(b) => Ok(*b.inner()),
            None => Err(EvalError {
                message: format!(
                    "the expression must evaluate to a bool, but gave a value of type '{}'",
                    result.get_type().name()
                ),
            }),
        }
    }
}

/// The first parse error, which is the one the others follow from.
fn parse_error(source: &str, errors: cel::ParseErrors) -> CompileError {
    let Some(first) = errors.errors.first() else {
        return CompileError {
            line: 1,
            column: 1,
            message: "syntax error".to_owned(),
        };
    };
    let (line, column) = match first.pos {
        (line, column) if line >= 1 && column >= 1 => (line as usize, column as usize),
        _ => (1, 1),
    };
    let mut message = first
        .msg
        .strip_prefix("Syntax error: ")
        .unwrap_or(&first.msg)
        .to_owned();
    // ANTLR lists every token it could have accepted; where that is "any expression" say so.
    if let Some(at) = message.find(" expecting {")
        && message[at..].contains("IDENTIFIER")
        && message[at..].contains("NUM_INT")
    {
        message.truncate(at);
        message.push_str(" expecting an expression");
    }
    message = message.replace("'<EOF>'", "end of expression");
    if source.trim().is_empty() {
        message = "the expression is empty".to_owned();
    }
    CompileError {
        line,
        column,
        message: format!("syntax error: {message}"),
    }
}

/// Walks the parsed expression: checks variables and functions, records the variables used,
/// and rewrites what evaluation needs rewritten (arithmetic, absolute names).
struct Checker<'s> {
    source: &'s str,
    info: &'s SourceInfo,
    allowed: &'s [Var],
    used: Vec<Var>,
    /// The variables (a bit each) used other than as the operand of an index or field selection.
    whole: u16,
    /// Comprehension variables in scope, innermost last.
    bound: Vec<String>,
    /// Comprehension accumulators in scope (`@result`).
    accumulators: Vec<String>,
    /// Asks cel whether a function exists, see [`Checker::function_exists`].
    probe: Context<'static, 'static>,
}

/// Operators the interpreter evaluates itself: they are no `Env` functions. (The arithmetic
/// ones are renamed to functions, see `numbers`.)
const OPERATORS: [&str; 16] = [
    operators::CONDITIONAL,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
    operators::NEGATE,
    operators::INDEX,
    operators::OPT_INDEX,
    operators::OPT_SELECT,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
];

impl Checker<'_> {
    fn visit(&mut self, expr: &mut IdedExpr) -> Result<(), CompileError> {
        let id = expr.id;
        match &mut expr.expr {
            Node::Unspecified | Node::Literal(_) => Ok(()),
            Node::Ident(name) => self.ident(id, name, false),
            Node::Select(select) => {
                // `google.protobuf.Timestamp` names a type, not fields of a variable `google`.
                if !select.test
                    && let Some(name) = qualified_name(expr)
                    && !self.is_bound(root_segment(&name))
                    && ENV
                        .types()
                        .find_type(name.trim_start_matches('.'))
                        .is_some()
                {
                    return Ok(());
                }
                let Node::Select(select) = &mut expr.expr else {
                    return Ok(());
                };
                self.visit_indexed(&mut select.operand)?;
                select_to_index(expr);
                Ok(())
            }
            Node::Call(call) => {
                self.call(id, call)?;
                if !self.is_accumulator_step(&expr.expr) {
                    numbers::rewrite(expr);
                }
                Ok(())
            }
            Node::List(list) => list.elements.iter_mut().try_for_each(|e| self.visit(e)),
            Node::Map(map) => map.entries.iter_mut().try_for_each(|entry| {
                if let EntryExpr::MapEntry(entry) = &mut entry.expr {
                    self.visit(&mut entry.key)?;
                    self.visit(&mut entry.value)?;
                }
                Ok(())
            }),
            Node::Struct(strct) => {
                if ENV.types().find_struct(&strct.type_name).is_none() {
                    return Err(
                        self.error(id, format!("unknown message type '{}'", strct.type_name))
                    );
                }
                strct.entries.iter_mut().try_for_each(|entry| {
                    if let EntryExpr::StructField(field) = &mut entry.expr {
                        self.visit(&mut field.value)?;
                    }
                    Ok(())
                })
            }
            Node::Comprehension(c) => {
                // The range and the initial accumulator are evaluated outside the loop's scope.
                self.visit(&mut c.iter_range)?;
                self.visit(&mut c.accu_init)?;
                let depth = self.bound.len();
                self.bound.push(c.iter_var.clone());
                if let Some(var2) = &c.iter_var2 {
                    self.bound.push(var2.clone());
                }
                self.bound.push(c.accu_var.clone());
                self.accumulators.push(c.accu_var.clone());
                let result = self
                    .visit(&mut c.loop_cond)
                    .and_then(|()| self.visit(&mut c.loop_step))
                    .and_then(|()| self.visit(&mut c.result));
                self.accumulators.pop();
                self.bound.truncate(depth);
                result
            }
        }
    }

    /// Visits the operand of an index or field selection: a variable used only that way can be
    /// bound without converting it.
    fn visit_indexed(&mut self, expr: &mut IdedExpr) -> Result<(), CompileError> {
        match &mut expr.expr {
            Node::Ident(name) => self.ident(expr.id, name, true),
            _ => self.visit(expr),
        }
    }

    fn ident(&mut self, id: u64, name: &mut String, indexed: bool) -> Result<(), CompileError> {
        let absolute = name.starts_with('.');
        let bare = name.trim_start_matches('.');
        if !absolute && self.is_bound(bare) {
            return Ok(());
        }
        if let Some(var) = Var::from_name(bare)
            && self.allowed.contains(&var)
        {
            if absolute {
                // The step's variables live in an inner scope, which cel skips for an absolute
                // name; without a container `.value` can only mean `value`, unless a
                // comprehension variable shadows it.
                if self.is_bound(bare) {
                    return Err(self.error(
                        id,
                        format!(
                            "'.{bare}' refers past the comprehension variable '{bare}': rename that variable"
                        ),
                    ));
                }
                *name = bare.to_owned();
            }
            if !self.used.contains(&var) {
                self.used.push(var);
            }
            if !indexed {
                self.whole |= var.bit();
            }
            return Ok(());
        }
        if ENV.types().find_type(bare).is_some() {
            return Ok(());
        }
        let message = match Var::from_name(bare) {
            Some(var) => format!(
                "the variable '{var}' is not available in this expression; {}",
                self.available()
            ),
            None => match self.suggestion(bare) {
                Some(near) => format!(
                    "undeclared variable '{bare}' (did you mean '{near}'?); {}",
                    self.available()
                ),
                None => format!("undeclared variable '{bare}'; {}", self.available()),
            },
        };
        Err(self.error(id, message))
    }

    fn call(&mut self, id: u64, call: &mut CallExpr) -> Result<(), CompileError> {
        match &mut call.target {
            Some(target) => {
                // `optional.of(x)` and `base64.encode(b)`: a qualified function, not a method of
                // a variable, when the name with the function's is declared (as cel decides).
                if let Some(name) = qualified_name(target)
                    && !self.is_bound(root_segment(&name))
                {
                    let function = format!("{name}.{}", call.func_name);
                    if self.function_exists(&function, false) {
                        return call.args.iter_mut().try_for_each(|a| self.visit(a));
                    }
                    // `math.greatests(1, 2)`: a misspelt function rather than a method of an
                    // undeclared variable `math`, unless `math` looks like a variable.
                    let root = root_segment(&name);
                    if Var::from_name(root).is_none() && self.suggestion(root).is_none() {
                        return Err(self.error_at_name(
                            id,
                            &function,
                            format!(
                                "unknown function '{function}' ('{root}' is not a variable either; {})",
                                self.available()
                            ),
                        ));
                    }
                }
                self.visit(target)?;
                if !self.function_exists(&call.func_name, true) {
                    return Err(self.error_at_name(
                        id,
                        &call.func_name,
                        format!("unknown method '{}'", call.func_name),
                    ));
                }
            }
            None => {
                if !OPERATORS.contains(&call.func_name.as_str())
                    && !numbers::is_arithmetic(&call.func_name)
                    && !self.function_exists(&call.func_name, false)
                {
                    return Err(self.error_at_name(
                        id,
                        &call.func_name,
                        format!("unknown function '{}'", call.func_name),
                    ));
                }
                if call.target.is_none()
                    && INDEXING.contains(&call.func_name.as_str())
                    && let Some((operand, rest)) = call.args.split_first_mut()
                {
                    self.visit_indexed(operand)?;
                    return rest.iter_mut().try_for_each(|a| self.visit(a));
                }
            }
        }
        call.args.iter_mut().try_for_each(|a| self.visit(a))
    }

    /// Whether cel knows a function `name` (a method if `member`): a call with no arguments
    /// resolves it exactly as evaluation will, and only an unknown name is reported as an
    /// undeclared reference (a known one without a zero-argument overload as "no matching
    /// overload"). cel 0.15 has no public query for this; functions are pure, so calling one
    /// is harmless.
    fn function_exists(&self, name: &str, member: bool) -> bool {
        let target = member.then(|| {
            Box::new(IdedExpr {
                id: 0,
                expr: Node::Literal(LiteralValue::Null),
            })
        });
        let probe = IdedExpr {
            id: 0,
            expr: Node::Call(CallExpr {
                func_name: name.to_owned(),
                target,
                args: Vec::new(),
            }),
        };
        !matches!(
            Value::resolve_val(&probe, &self.probe),
            Err(ExecutionError::UndeclaredReference(_))
        )
    }

    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|b| b == name)
    }

    /// A comprehension step adding to its accumulator (`@result + [x]`), which cel evaluates in
    /// place when it sees the `_+_` it was written with.
    fn is_accumulator_step(&self, expr: &Node) -> bool {
        let Node::Call(call) = expr else {
            return false;
        };
        call.args.iter().any(
            |a| matches!(&a.expr, Node::Ident(name) if self.accumulators.iter().any(|acc| acc == name)),
        )
    }

    fn available(&self) -> String {
        if self.allowed.is_empty() {
            "this expression has no variables".to_owned()
        } else {
            let names: Vec<&str> = self.allowed.iter().map(|v| v.name()).collect();
            format!("available: {}", names.join(", "))
        }
    }

    /// The allowed variable closest to a misspelt one, if it is close.
    fn suggestion(&self, name: &str) -> Option<&'static str> {
        self.allowed
            .iter()
            .map(|v| (edit_distance(name, v.name()), v.name()))
            .filter(|(d, v)| *d <= 2.max(v.len() / 3) && *d < v.len())
            .min_by_key(|(d, _)| *d)
            .map(|(_, v)| v)
    }

    fn error(&self, id: u64, message: String) -> CompileError {
        let offset = self.info.offset_for(id).map(|(start, _)| start as usize);
        self.error_at(offset, message)
    }

    /// An error about a call, placed on the function's name: cel places a call at its `(`.
    fn error_at_name(&self, id: u64, name: &str, message: String) -> CompileError {
        let offset = self.info.offset_for(id).map(|(start, _)| {
            let start = start as usize;
            match self.source.get(..start) {
                Some(before) if before.ends_with(name) => start - name.len(),
                _ => start,
            }
        });
        self.error_at(offset, message)
    }

    fn error_at(&self, offset: Option<usize>, message: String) -> CompileError {
        let (line, column) = offset.map_or((1, 1), |offset| line_column(self.source, offset));
        CompileError {
            line,
            column,
            message,
        }
    }
}

/// The operators whose first argument is indexed: `x[i]`, `x[?i]`, `x.?f`.
const INDEXING: [&str; 3] = [
    operators::INDEX,
    operators::OPT_INDEX,
    operators::OPT_SELECT,
];

/// Turns `x.f`, where `x` is a variable, into `x['f']`, which means the same on a map.
///
/// cel resolves `x.f` as a qualified name first (it could name a variable `x.f` or a type),
/// which costs a `Vec` and a joined `String` per evaluation; an index on a variable does not.
/// Only the innermost selection needs it: `x.f.g` becomes `x['f'].g`, whose outer selection
/// has an operand that is no name.
fn select_to_index(expr: &mut IdedExpr) {
    let Node::Select(select) = &mut expr.expr else {
        return;
    };
    if select.test || !matches!(select.operand.expr, Node::Ident(_)) {
        return;
    }
    let operand = std::mem::take(&mut *select.operand);
    let field = IdedExpr {
        id: expr.id,
        expr: Node::Literal(LiteralValue::String(
            std::mem::take(&mut select.field).into(),
        )),
    };
    expr.expr = Node::Call(CallExpr {
        func_name: operators::INDEX.to_owned(),
        target: None,
        args: vec![operand, field],
    });
}

/// `a.b.c` for an identifier with field selections on it, else `None`.
fn qualified_name(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Node::Ident(name) => Some(name.clone()),
        Node::Select(select) if !select.test => {
            qualified_name(&select.operand).map(|prefix| format!("{prefix}.{}", select.field))
        }
        _ => None,
    }
}

fn root_segment(name: &str) -> &str {
    let name = name.trim_start_matches('.');
    name.split('.').next().unwrap_or(name)
}

/// 1-based line and column (in characters) of the byte `offset` of `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
