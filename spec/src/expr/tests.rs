use super::*;
use std::collections::HashMap;

const ORDER: &[u8] = br#"{"id": 7, "amount": 150.0, "count": 3, "region": "eu", "type": "web"}"#;

fn json(bytes: &[u8]) -> Value {
    json_to_value(bytes).expect("valid JSON")
}

fn eval_on(source: &str, value: &Value) -> Result<Value, EvalError> {
    let expr = Expr::compile(source, &[Var::Key, Var::Value]).expect("compiles");
    let env = ExprEnv::new();
    expr.eval(
        &env,
        &Bindings {
            value: Some(value),
            ..Bindings::default()
        },
    )
}

fn truth(source: &str, value: &Value) -> bool {
    let expr = Expr::compile(source, &[Var::Value]).expect("compiles");
    expr.eval_bool(
        &ExprEnv::new(),
        &Bindings {
            value: Some(value),
            ..Bindings::default()
        },
    )
    .unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn compile_error(source: &str, allowed: &[Var]) -> CompileError {
    match Expr::compile(source, allowed) {
        Ok(_) => panic!("{source:?} compiled"),
        Err(e) => e,
    }
}

fn to_json(value: &Value) -> String {
    let mut out = Vec::new();
    value_to_json(value, &mut out).expect("writable");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn the_manifest_examples_work_on_json() {
    let order = json(ORDER);
    assert!(truth("value.amount >= 100", &order));
    assert!(truth("value.region == 'eu'", &order));
    assert!(!truth("value.region == 'us'", &order));
    assert!(truth("value.amount >= 100 && value.region == 'eu'", &order));
    assert_eq!(
        eval_on("'orders-' + value.type", &order),
        Ok(Value::from("orders-web"))
    );
    let mapped = eval_on("{'id': value.id, 'amount': value.amount}", &order).expect("evaluates");
    assert_eq!(to_json(&mapped), r#"{"amount":150.0,"id":7}"#);
    assert_eq!(
        eval_on("value.customer", &json(br#"{"customer": "c-1"}"#)),
        Ok(Value::from("c-1"))
    );
}

#[test]
fn numbers_behave_as_users_expect() {
    let order = json(ORDER);
    for source in [
        "value.id * 2 == 14",
        "value.count + 1 == 4",
        "value.amount * 2 == 300.0",
        "value.amount * 2 == 300",
        "value.amount > 100",
        "value.amount == 150",
        "150 == value.amount",
        "value.id + 0.5 == 7.5",
        "0.5 + value.id == 7.5",
        "value.amount - value.id == 143.0",
        "value.amount / value.count == 50.0",
        "value.count / 2 == 1",
        "value.count / 2.0 == 1.5",
        "value.count % 2 == 1",
        "7.5 % 2 == 1.5",
        "-value.id == -7",
        "value.id * 1u == 7",
        "type(value.id * 1u) == int",
        "type(value.count / 2) == int",
        "type(value.amount * 2) == double",
        "type(value.id + 0.5) == double",
        "type(1u + 2u) == uint",
        "value.id in [7.0, 8.0]",
        "[1, 2].map(x, x * value.amount) == [150.0, 300.0]",
    ] {
        assert!(truth(source, &order), "{source}");
    }
    assert_eq!(eval_on("value.count / 2", &order), Ok(Value::Int(1)));
    assert_eq!(eval_on("value.amount * 2", &order), Ok(Value::Float(300.0)));
}

#[test]
fn big_json_integers_are_uints_that_mix_with_ints() {
    let v = json(br#"{"big": 9223372036854775808, "max": 18446744073709551615, "small": 5}"#);
    assert!(matches!(eval_on("value.big", &v), Ok(Value::UInt(_))));
    assert!(truth("value.big - 1 == 9223372036854775807", &v));
    assert!(truth("type(value.big - 1) == int", &v));
    assert!(truth("value.big > value.small", &v));
    assert!(truth("value.max == 18446744073709551615u", &v));
    assert!(truth("value.max + 0.0 == 18446744073709551615.0", &v));
    assert!(truth("value.max - value.big == 9223372036854775807u", &v));
    let err = eval_on("value.big + value.small", &v).expect_err("does not fit an int");
    assert!(err.message.contains("Overflow"), "{err}");
}

#[test]
fn arithmetic_errors_are_reported() {
    let order = json(ORDER);
    let err = eval_on("value.id / 0", &order).expect_err("division by zero");
    assert!(err.message.contains("Division by zero"), "{err}");
    let err = eval_on("value.id % 0", &order).expect_err("remainder by zero");
    assert!(err.message.contains("Remainder by zero"), "{err}");
    assert_eq!(
        eval_on("value.amount / 0", &order),
        Ok(Value::Float(f64::INFINITY))
    );
    let err = eval_on("9223372036854775807 + value.id", &order).expect_err("overflow");
    assert!(err.message.contains("Overflow"), "{err}");
    let err = eval_on("value.id + value.region", &order).expect_err("no overload");
    assert_eq!(
        err.message,
        "found no matching overload for '_+_' applied to '(int, string)'"
    );
    let err = eval_on("value.region - 'e'", &order).expect_err("no overload");
    assert_eq!(
        err.message,
        "found no matching overload for '_-_' applied to '(string, string)'"
    );
}

#[test]
fn non_numeric_operators_keep_their_cel_meaning() {
    let v = json(br#"{"tags": ["a", "b"], "name": "x"}"#);
    assert!(truth("value.tags + ['c'] == ['a', 'b', 'c']", &v));
    assert!(truth("value.name + 'y' == 'xy'", &v));
    assert!(truth("b'a' + b'b' == b'ab'", &v));
    assert!(truth(
        "timestamp('2024-01-01T00:00:00Z') + duration('1h') == timestamp('2024-01-01T01:00:00Z')",
        &v
    ));
    assert!(truth(
        "duration('1h') - duration('30m') == duration('30m')",
        &v
    ));
    assert!(truth("value.tags.map(t, t + '!') == ['a!', 'b!']", &v));
    assert!(truth("value.tags.filter(t, t != 'a') == ['b']", &v));
    assert!(truth("value.tags.exists_one(t, t == 'a')", &v));
    assert!(truth("value.tags.all(t, size(t) == 1)", &v));
    assert!(truth(
        "'a' in value.tags && has(value.name) && !has(value.nope)",
        &v
    ));
    assert!(truth(
        "value.name.startsWith('x') && value.name.upperAscii() == 'X'",
        &v
    ));
    assert!(truth("math.greatest(1, 2.5) == 2.5", &v));
    assert!(truth(
        "optional.of(1).hasValue() && !optional.none().hasValue()",
        &v
    ));
    assert!(truth("base64.encode(b'hi') == 'aGk='", &v));
    assert!(truth("type(value) == map && type(value.tags) == list", &v));
    assert!(truth(
        "type(timestamp('2024-01-01T00:00:00Z')) == google.protobuf.Timestamp",
        &v
    ));
    assert!(truth("value.?missing.orValue('d') == 'd'", &v));
    assert!(truth(".value.name == 'x'", &v));
}

#[test]
fn maps_only_indexed_are_read_in_place() {
    let v = json(br#"{"amount": 150.0, "region": "eu", "nested": {"a": 1, "l": [1, 2]}, "items": [{"x": 1}, {"x": 2}]}"#);
    let fields_only = |source: &str| {
        let expr = Expr::compile(source, &[Var::Value]).expect("compiles");
        expr.fields_only & Var::Value.bit() != 0
    };
    for source in [
        "value['amount'] == 150",
        "has(value.region) && !has(value.nope)",
        "value.?nope.orValue(1) == 1",
        "value[?'region'].orValue('') == 'eu'",
        "value.nested.a == 1 && value.nested.l[1] == 2",
        "value.nested == {'a': 1, 'l': [1, 2]}",
        "{'a': 1, 'l': [1.0, 2.0]} == value.nested",
        "size(value.nested) == 2 && 'a' in value.nested",
        "value.items.all(i, i.x > 0) && value.items.map(i, i.x * 2) == [2, 4]",
        "value.items.exists(value, value.x == 2)",
    ] {
        assert!(fields_only(source), "{source}");
        assert!(truth(source, &v), "{source}");
    }
    // Used as a whole somewhere: converted, and every operation works on it.
    for source in [
        "size(value) == 4",
        "'amount' in value",
        "value.all(k, k != '')",
        "value == value && value.amount > 1",
        "[value][0].region == 'eu'",
        "{'o': value}.o.nested.a == 1",
    ] {
        assert!(!fields_only(source), "{source}");
        assert!(truth(source, &v), "{source}");
    }
    let err = eval_on("value.nope", &v).expect_err("missing");
    assert_eq!(err.message, "No such key: nope");
    let err = eval_on("value[1]", &v).expect_err("missing");
    assert_eq!(err.message, "No such key: 1");
    let err = eval_on("value.region.x", &v).expect_err("not a map");
    assert!(err.message.contains("no matching overload"), "{err}");

    let numeric = Value::Map(cel::objects::Map {
        map: Arc::new(HashMap::from([
            (cel::objects::Key::Int(1), Value::from("one")),
            (cel::objects::Key::Uint(2), Value::from("two")),
            (cel::objects::Key::Bool(true), Value::from("yes")),
        ])),
    });
    for source in [
        "value[1] == 'one' && value[1u] == 'one' && value[1.0] == 'one'",
        "value[2] == 'two' && value[2u] == 'two' && value[2.0] == 'two'",
        "value[true] == 'yes' && !has(value.x)",
    ] {
        assert!(fields_only(source), "{source}");
        assert!(truth(source, &numeric), "{source}");
    }
    let err = eval_on("value[1.5]", &numeric).expect_err("missing");
    assert_eq!(err.message, "No such key: 1.5");
    let err = eval_on("value[[1]]", &numeric).expect_err("not a key");
    assert!(
        err.message.contains("no matching overload for '_[_]'"),
        "{err}"
    );

    // Not a map: bound as it is.
    assert!(truth("value[1] == 'b'", &json(br#"["a", "b"]"#)));
    let err = eval_on("value.x", &json(br#""text""#)).expect_err("not a map");
    assert!(err.message.contains("no matching overload"), "{err}");
}

#[test]
fn the_other_record_variables_are_bound() {
    let headers = vec![
        ("trace".to_owned(), Some(b"abc".to_vec())),
        ("bin".to_owned(), Some(vec![0x66, 0xff, 0x6f])),
        ("trace".to_owned(), Some(b"last".to_vec())),
        ("empty".to_owned(), None),
    ];
    let key = Value::from("k1");
    let all = &Var::ALL;
    let env = ExprEnv::new();
    let bindings = Bindings {
        key: Some(&key),
        timestamp: Some(1_700_000_000_000),
        headers: Some(&headers),
        topic: Some("orders"),
        partition: Some(3),
        offset: Some(42),
        ..Bindings::default()
    };
    for source in [
        "key == 'k1'",
        "timestamp == 1700000000000",
        "headers['trace'] == 'last'",
        "headers.bin == 'f\u{fffd}o'",
        "!('nope' in headers)",
        "headers.empty == null && size(headers) == 3",
        "topic == 'orders' && partition == 3 && offset == 42",
        "timestamp / 1000 == 1700000000",
    ] {
        let expr = Expr::compile(source, all).expect("compiles");
        assert_eq!(expr.eval_bool(&env, &bindings), Ok(true), "{source}");
    }

    let left = json(br#"{"id": 1}"#);
    let right = json(br#"{"name": "n"}"#);
    let joiner = Expr::compile(
        "{'order': left, 'customer': right}",
        &[Var::Left, Var::Right],
    )
    .expect("compiles");
    let joined = joiner
        .eval(
            &env,
            &Bindings {
                left: Some(&left),
                right: Some(&right),
                ..Bindings::default()
            },
        )
        .expect("evaluates");
    assert_eq!(
        to_json(&joined),
        r#"{"customer":{"name":"n"},"order":{"id":1}}"#
    );

    let agg = Value::Int(41);
    let adder = Expr::compile("agg + value.amount", &[Var::Agg, Var::Value]).expect("compiles");
    let value = json(br#"{"amount": 1}"#);
    let bindings = Bindings {
        agg: Some(&agg),
        value: Some(&value),
        ..Bindings::default()
    };
    assert_eq!(adder.eval(&env, &bindings), Ok(Value::Int(42)));
}

#[test]
fn undeclared_variables_fail_at_compile_with_their_position() {
    let e = compile_error("vlaue.x > 1", &[Var::Key, Var::Value]);
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("'vlaue'"), "{e}");
    assert!(e.message.contains("did you mean 'value'?"), "{e}");
    assert!(e.message.contains("available: key, value"), "{e}");

    let e = compile_error("value.amount > 1 &&\n  valeu.region == 'eu'", &[Var::Value]);
    assert_eq!((e.line, e.column), (2, 3), "{e}");
    assert_eq!(
        e.to_string(),
        "line 2, column 3: undeclared variable 'valeu' (did you mean 'value'?); available: value"
    );

    // a column counts characters, not bytes
    let e = compile_error("'été' + nope", &[Var::Value]);
    assert_eq!((e.line, e.column), (1, 9), "{e}");

    // a variable that exists, but not in this step
    let e = compile_error("left.id == value.id", &[Var::Value]);
    assert_eq!((e.line, e.column), (1, 1));
    assert!(
        e.message
            .contains("the variable 'left' is not available in this expression"),
        "{e}"
    );

    // in a comprehension: its own variable is fine, the typo is not
    let e = compile_error("value.items.all(i, i.x > valu.min)", &[Var::Value]);
    assert_eq!((e.line, e.column), (1, 26), "{e}");
    assert!(Expr::compile("value.items.all(value, value > 0)", &[Var::Value]).is_ok());
    assert!(Expr::compile("[1].map(x, x + 1)", &[]).is_ok());
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = compile_error("value.amount >= ", &[Var::Value]);
    assert_eq!((e.line, e.column), (1, 17), "{e}");
    assert_eq!(
        e.message,
        "syntax error: mismatched input end of expression expecting an expression"
    );
    let e = compile_error("value.amount >\n  >= 1", &[Var::Value]);
    assert_eq!((e.line, e.column), (2, 3), "{e}");
    let e = compile_error("value.x ☃ 1", &[Var::Value]);
    assert_eq!((e.line, e.column), (1, 9), "{e}");
    let e = compile_error("   ", &[Var::Value]);
    assert_eq!(e.message, "syntax error: the expression is empty");
}

#[test]
fn unknown_functions_fail_at_compile() {
    let e = compile_error("value.amount > 1 && sise(value.x) > 0", &[Var::Value]);
    assert_eq!(e.to_string(), "line 1, column 21: unknown function 'sise'");
    let e = compile_error("value.name\n  .startWith('a')", &[Var::Value]);
    assert_eq!(
        e.to_string(),
        "line 2, column 4: unknown method 'startWith'"
    );
    let e = compile_error("1 + math.greatests(1, 2)", &[Var::Value]);
    assert_eq!(
        e.to_string(),
        "line 1, column 5: unknown function 'math.greatests' ('math' is not a variable either; available: value)"
    );
    let e = compile_error("vlaue.name.startsWith('a')", &[Var::Value]);
    assert!(e.message.contains("did you mean 'value'?"), "{e}");
    let e = compile_error("acme.Order{id: 1}", &[]);
    assert!(
        e.message.contains("unknown message type 'acme.Order'"),
        "{e}"
    );
    // A known function with the wrong argument types is only found when it runs.
    let expr = Expr::compile("size(value.amount)", &[Var::Value]).expect("compiles");
    let value = json(ORDER);
    let err = expr
        .eval(
            &ExprEnv::new(),
            &Bindings {
                value: Some(&value),
                ..Bindings::default()
            },
        )
        .expect_err("no overload");
    assert!(err.message.contains("'size'"), "{err}");
}

#[test]
fn eval_bool_names_the_type_it_got() {
    let value = json(ORDER);
    let expr = Expr::compile("value.amount", &[Var::Value]).expect("compiles");
    let err = expr
        .eval_bool(
            &ExprEnv::new(),
            &Bindings {
                value: Some(&value),
                ..Bindings::default()
            },
        )
        .expect_err("not a bool");
    assert!(err.message.contains("'double'"), "{err}");
}

#[test]
fn unbound_and_missing_data_are_eval_errors() {
    let expr = Expr::compile("key == 'a'", &[Var::Key, Var::Value]).expect("compiles");
    assert_eq!(expr.variables(), &[Var::Key]);
    let err = expr
        .eval_bool(&ExprEnv::new(), &Bindings::default())
        .expect_err("unbound");
    assert_eq!(
        err.message,
        "the variable 'key' is not bound for this record"
    );
    // variables the expression does not use need not be bound
    let value = json(ORDER);
    let expr = Expr::compile("value.nope == 1", &[Var::Key, Var::Value]).expect("compiles");
    let err = expr
        .eval_bool(
            &ExprEnv::new(),
            &Bindings {
                value: Some(&value),
                ..Bindings::default()
            },
        )
        .expect_err("no such key");
    assert!(err.message.contains("nope"), "{err}");
}

#[test]
fn json_output_does_not_depend_on_the_hash_seed() {
    // Each HashMap gets its own random seed: insert the same keys into many of them, in
    // different orders, and the bytes must not change.
    let keys: Vec<String> = (0..40).map(|i| format!("k{i:02}-{}", 40 - i)).collect();
    let mut outputs = std::collections::BTreeSet::new();
    for round in 0..20 {
        let mut map = HashMap::new();
        let mut order = keys.clone();
        order.rotate_left(round);
        for k in order {
            map.insert(cel::objects::Key::from(k.as_str()), Value::from(k.clone()));
        }
        let value = Value::Map(cel::objects::Map { map: Arc::new(map) });
        let via_cel = eval_on("{'m': value, 'n': [value]}", &value).expect("evaluates");
        outputs.insert(to_json(&via_cel));
    }
    assert_eq!(outputs.len(), 1);
}

#[test]
fn compiled_expressions_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expr>();
    assert_send_sync::<ExprEnv>();

    let expr = Arc::new(Expr::compile("value.amount * 2", &[Var::Value]).expect("compiles"));
    let env = Arc::new(ExprEnv::new());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (expr, env) = (Arc::clone(&expr), Arc::clone(&env));
            std::thread::spawn(move || {
                let value = json(format!(r#"{{"amount": {i}}}"#).as_bytes());
                let bindings = Bindings {
                    value: Some(&value),
                    ..Bindings::default()
                };
                (0..100)
                    .map(|_| expr.eval(&env, &bindings))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let results = handle.join().expect("thread").expect("evaluates");
        assert!(results.iter().all(|r| *r == Value::Int(2 * i as i64)));
    }
    assert_eq!(expr.clone().source(), "value.amount * 2");
}

/// Throughput of the two hot paths; run in release:
/// `cargo test --release -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    use std::hint::black_box;
    use std::time::Instant;

    let env = ExprEnv::new();
    let records: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"id": {i}, "amount": {}.5, "region": "{}", "customer": "customer-{:04}-abcdefghijklmnopqrstuv"}}"#,
                i % 300,
                if i % 3 == 0 { "eu" } else { "us" },
                i % 97
            )
            .into_bytes()
        })
        .collect();
    let n = 1_000_000usize;
    println!("record size ~{} bytes", records[500].len());

    let filter = Expr::compile("value.amount >= 100 && value.region == 'eu'", &[Var::Value])
        .expect("compiles");
    let start = Instant::now();
    let mut passed = 0usize;
    for i in 0..n {
        let value = json_to_value(&records[i % records.len()]).expect("valid");
        let bindings = Bindings {
            value: Some(&value),
            ..Bindings::default()
        };
        passed += usize::from(filter.eval_bool(&env, &bindings).expect("evaluates"));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "filter incl. json_to_value: {:.0} records/s ({passed} passed)",
        n as f64 / secs
    );

    let map =
        Expr::compile("{'id': value.id, 'amount': value.amount}", &[Var::Value]).expect("compiles");
    let start = Instant::now();
    let mut bytes = 0usize;
    let mut out = Vec::with_capacity(256);
    for i in 0..n {
        let value = json_to_value(&records[i % records.len()]).expect("valid");
        let bindings = Bindings {
            value: Some(&value),
            ..Bindings::default()
        };
        let mapped = map.eval(&env, &bindings).expect("evaluates");
        out.clear();
        value_to_json(&mapped, &mut out).expect("writable");
        bytes += black_box(out.len());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "mapValues incl. json_to_value + value_to_json: {:.0} records/s ({bytes} bytes)",
        n as f64 / secs
    );

    // The parts, to see where the time goes.
    let start = Instant::now();
    for i in 0..n {
        black_box(json_to_value(&records[i % records.len()]).expect("valid"));
    }
    println!(
        "json_to_value alone: {:.0} records/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let value = json_to_value(&records[500]).expect("valid");
    let bindings = Bindings {
        value: Some(&value),
        ..Bindings::default()
    };
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            filter
                .eval_bool(&env, black_box(&bindings))
                .expect("evaluates"),
        );
    }
    println!(
        "filter eval_bool alone: {:.0} records/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let whole = Expr::compile(
        "value.amount >= 100 && value.region == 'eu' && size(value) == 4",
        &[Var::Value],
    )
    .expect("compiles");
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            whole
                .eval_bool(&env, black_box(&bindings))
                .expect("evaluates"),
        );
    }
    println!(
        "filter eval_bool alone, value converted whole (size(value)): {:.0} records/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let arith = Expr::compile("value.amount * 2 + value.id > 10", &[Var::Value]).expect("compiles");
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            arith
                .eval_bool(&env, black_box(&bindings))
                .expect("evaluates"),
        );
    }
    println!(
        "mixed arithmetic eval_bool alone: {:.0} records/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
}
