// The sandbox's prelude, a module compiled to bytecode once per process
// (see `prelude.rs`). Its default export installs `console` and the host
// functions on the global object, and returns the helpers the engine uses to
// read results and errors. It runs once per block, before the model's code,
// and keeps its own copies of `JSON` and friends so the code cannot break the
// engine by replacing them.
export default function setup(
  hostCall,
  consoleWrite,
  hostNames,
  loadModule,
  moduleCalled,
  clock,
  [outputBytes, maxInFlight, seedHigh, seedLow, timeOrigin],
) {
  const global = globalThis;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const ErrorType = Error;
  const DateType = Date;
  const WeakSetType = WeakSet;
  const objectToString = Object.prototype.toString;
  const defineProperty = Object.defineProperty;
  const keysOf = Object.keys;
  const isArray = Array.isArray;
  const freeze = Object.freeze;
  const apply = Reflect.apply;
  const construct = Reflect.construct;
  const functionToString = Function.prototype.toString;
  const MapType = Map;
  const WeakMapType = WeakMap;
  const TypeErrorType = TypeError;
  const PromiseType = Promise;
  const imul = Math.imul;
  const setPrototypeOf = Object.setPrototypeOf;

  // The clock and Math.random come from the engine, which records them: a
  // block that waited on a person runs again from the start when the
  // answer comes and must see the same values as before (replay.rs).
  const dateNow = function now() {
    return clock(false);
  };
  const RecordedDate = function Date(...args) {
    if (new.target === undefined) return new DateType(dateNow()).toString();
    return construct(DateType, args.length === 0 ? [dateNow()] : args, new.target);
  };
  setPrototypeOf(RecordedDate, DateType);
  defineProperty(RecordedDate, "prototype", { value: DateType.prototype });
  defineProperty(RecordedDate, "length", { value: 7 });
  defineProperty(RecordedDate, "now", { value: dateNow, writable: true, configurable: true });
  defineProperty(DateType.prototype, "constructor", {
    value: RecordedDate,
    writable: true,
    configurable: true,
  });
  defineProperty(global, "Date", { value: RecordedDate, writable: true, configurable: true });
  // QuickJS's own `performance` has read-only properties: replaced whole.
  defineProperty(global, "performance", {
    value: freeze({
      now: function now() {
        return clock(true);
      },
      timeOrigin,
    }),
    writable: true,
    configurable: true,
  });
  // xoshiro128** from the engine's seed; 53 random bits per number.
  let s0 = seedHigh >>> 0;
  let s1 = seedLow >>> 0;
  let s2 = (seedHigh ^ 0x9e3779b9) >>> 0;
  let s3 = (seedLow ^ 0x85ebca6b) >>> 0;
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const rotl = (x, k) => (x << k) | (x >>> (32 - k));
  const next32 = () => {
    const result = imul(rotl(imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return result;
  };
  for (let i = 0; i < 8; i++) next32();
  defineProperty(Math, "random", {
    value: function random() {
      return ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
    },
    writable: true,
    configurable: true,
  });

  // Strings cross into Rust as UTF-8, which has no lone surrogates.
  const isWellFormed = String.prototype.isWellFormed;
  const toWellFormed = String.prototype.toWellFormed;
  const wellFormed = (text) =>
    isWellFormed.call(text) ? text : toWellFormed.call(text);

  // The replacer for JSON bound for Rust: JSON has no BigInt, so it goes as
  // its decimal string, and a lone surrogate (from slicing an emoji, say)
  // becomes U+FFFD, as Rust's JSON parser rejects it. (Object keys are not
  // repaired: a key with a lone surrogate fails the conversion.)
  const forRust = (_key, value) => {
    switch (typeof value) {
      case "bigint":
        return value.toString();
      case "string":
        return wellFormed(value);
      default:
        return value;
    }
  };

  // console: Node-like formatting, one line per call, capped in bytes.

  const circularSafe = () => {
    const seen = new WeakSetType();
    return (key, value) => {
      if (typeof value === "bigint") return value.toString();
      if (typeof value === "object" && value !== null) {
        if (seen.has(value)) return "[Circular]";
        seen.add(value);
      }
      return value;
    };
  };

  const formatObject = (value) => {
    if (value instanceof ErrorType) return String(value);
    if (value instanceof DateType) {
      return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
    }
    try {
      const json = stringify(value, forRust);
      if (json !== undefined) return json;
    } catch (_) {
      // A cycle: fall through to the cycle-safe form.
    }
    try {
      const json = stringify(value, circularSafe());
      if (json !== undefined) return json;
    } catch (_) {
      // A throwing `toJSON` or proxy: fall back to the tag.
    }
    return objectToString.call(value);
  };

  const format = (value) => {
    try {
      switch (typeof value) {
        case "string":
          return value;
        case "object":
          return value === null ? "null" : formatObject(value);
        case "function":
          return value.name ? `[Function: ${value.name}]` : "[Function (anonymous)]";
        case "bigint":
          return `${value}n`;
        case "symbol":
          return value.toString();
        default:
          return String(value);
      }
    } catch (_) {
      return objectToString.call(value);
    }
  };

  // Bytes the next line may take, as the engine last reported; -1 once the
  // output is full, after which console calls return at once.
  let room = outputBytes;
  const write = function (...args) {
    if (room < 0) return;
    let line = "";
    for (let i = 0; i < args.length; i++) {
      if (i > 0) line += " ";
      line += format(args[i]);
      // Every UTF-16 unit is at least one UTF-8 byte: past `room` units the
      // line is cut anyway, so the rest need not be formatted or copied.
      if (line.length > room) break;
    }
    if (line.length > room + 1) line = line.slice(0, room + 1);
    room = consoleWrite(wellFormed(line));
  };
  const console = {};
  for (const level of ["log", "info", "warn", "error", "debug", "trace", "dir"]) {
    console[level] = write;
  }
  global.console = console;

  // At most `maxInFlight` host calls run at once. A later call waits in a
  // queue here, its arguments (already JSON) still in the block's metered
  // memory, and takes the slot of the call that ends first: the slot passes
  // from hand to hand, so no call can slip in between. The queue's nodes
  // have no prototype, so nothing the code does to `Object.prototype` or
  // `Array.prototype` reaches it.
  let running = 0;
  let queueHead = null;
  let queueTail = null;
  const acquire = () => {
    if (running < maxInFlight) {
      running++;
      return undefined;
    }
    return new PromiseType((resolve) => {
      const node = { __proto__: null, resolve, next: null };
      if (queueTail === null) queueHead = node;
      else queueTail.next = node;
      queueTail = node;
    });
  };
  const release = () => {
    const node = queueHead;
    if (node === null) {
      running--;
      return;
    }
    queueHead = node.next;
    if (queueHead === null) queueTail = null;
    node.resolve();
  };

  // Host functions: `name(...args)` sends the arguments as one JSON array and
  // resolves with the host's JSON reply, or rejects with `Error(message)`.
  const hostFunction = (name, last) => {
    const call = async function (...args) {
      const argsJson = stringify(args, forRust);
      const wait = acquire();
      if (wait !== undefined) await wait;
      let reply;
      try {
        reply = await hostCall(name, argsJson);
      } catch (message) {
        throw new ErrorType(String(message));
      } finally {
        release();
      }
      return parse(reply);
    };
    defineProperty(call, "name", { value: last });
    return call;
  };
  for (const name of hostNames) {
    const path = name.split(".");
    const last = path[path.length - 1];
    let target = global;
    for (let i = 0; i < path.length - 1; i++) {
      let next = target[path[i]];
      if (next === null || (typeof next !== "object" && typeof next !== "function")) {
        next = {};
        target[path[i]] = next;
      }
      target = next;
    }
    target[last] = hostFunction(name, last);
  }

  // require(name): the exports of one of the agent's skill modules, loaded
  // once per block. Every exported function is wrapped so that a call tells
  // the host (a `skill_call` event); the module's own calls between its
  // functions do not go through the wrapper.
  const loaded = new MapType();
  const failed = new MapType();
  const loading = new MapType();
  const originals = new WeakMapType();
  const wrapExport = (moduleName, key, fn) => {
    const wrapped = function (...args) {
      moduleCalled(moduleName, key);
      return new.target ? construct(fn, args, new.target) : apply(fn, this, args);
    };
    defineProperty(wrapped, "name", { value: key });
    defineProperty(wrapped, "length", { value: fn.length });
    originals.set(wrapped, fn);
    return wrapped;
  };
  const require = function require(name) {
    if (typeof name !== "string") {
      throw new TypeErrorType('require() takes the name of a skill module, as in require("pricing")');
    }
    const done = loaded.get(name);
    if (done !== undefined) return done;
    if (failed.has(name)) throw failed.get(name);
    if (loading.has(name)) {
      throw new ErrorType(`require("${name}") is circular: the module is still running its top level`);
    }
    loading.set(name, true);
    let namespace;
    try {
      namespace = loadModule(name);
    } catch (error) {
      failed.set(name, error);
      throw error;
    } finally {
      loading.delete(name);
    }
    const exports = {};
    if (isArray(namespace)) {
      // Functions the host serves (an MCP server's tools): host calls.
      for (const fn of namespace) exports[fn] = hostFunction(`${name}.${fn}`, fn);
    } else {
      for (const key of keysOf(namespace)) {
        const value = namespace[key];
        exports[key] = typeof value === "function" ? wrapExport(name, key, value) : value;
      }
    }
    freeze(exports);
    loaded.set(name, exports);
    return exports;
  };
  global.require = require;

  // A function's parameter names, read from its source: `(a, { b }, c = 1)`
  // gives `["a", "{ b }", "c"]`. Only for describing a skill to the model.
  const paramsOf = (fn) => {
    let source;
    try {
      source = functionToString.call(fn);
    } catch (_) {
      return [];
    }
    const arrow = /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(source);
    if (arrow) return [arrow[1]];
    const open = source.indexOf("(");
    if (open < 0) return [];
    const params = [];
    let depth = 0;
    let current = "";
    let inDefault = false;
    for (let i = open + 1; i < source.length; i++) {
      const ch = source[i];
      if (ch === "(" || ch === "[" || ch === "{") depth++;
      if (ch === ")" || ch === "]" || ch === "}") {
        if (depth === 0) break;
        depth--;
      }
      if (depth === 0 && ch === ",") {
        params.push(current.trim());
        current = "";
        inDefault = false;
        continue;
      }
      if (depth === 0 && ch === "=") inDefault = true;
      if (!inDefault) current += ch;
    }
    if (current.trim() !== "") params.push(current.trim());
    return params;
  };

  // A module's exports as JSON text: `[{ name, params }]`, `params` null for
  // anything but a function.
  const inspectModule = (name) => {
    const exports = require(name);
    const described = [];
    for (const key of keysOf(exports)) {
      const value = exports[key];
      const original = typeof value === "function" ? originals.get(value) : undefined;
      described.push({
        name: key,
        params: original === undefined ? null : paramsOf(original),
      });
    }
    return stringify(described, forRust);
  };

  // The completion value as JSON text, or `undefined` when it has none
  // (`undefined`, a function, a symbol).
  const resultJson = (value) => {
    const json = stringify(value, forRust);
    return json === undefined ? undefined : wellFormed(json);
  };

  // An uncaught exception as `{ message, stack }`: an Error reads like
  // `TypeError: not a function`; a string as it is; anything else as JSON.
  const describe = (error) => {
    try {
      if (error instanceof ErrorType) {
        const stack = error.stack;
        return {
          message: wellFormed(String(error)),
          stack: typeof stack === "string" && stack !== "" ? wellFormed(stack) : undefined,
        };
      }
      if (typeof error === "string") return { message: wellFormed(error) };
      const json = stringify(error, forRust);
      return { message: wellFormed(json === undefined ? String(error) : json) };
    } catch (_) {
      return { message: wellFormed(objectToString.call(error)) };
    }
  };

  return { resultJson, describe, inspectModule };
}
