/**
 * Lamina's in-sandbox runtime client for Node.js functions.
 *
 * Run inside the execution environment as:
 *
 *     node /var/runtime/bootstrap.js          (cwd /var/task)
 *
 * It speaks the AWS Lambda Runtime API (2018-06-01) to http://$AWS_LAMBDA_RUNTIME_API and
 * reproduces the observable behaviour of AWS's Node.js runtime
 * (aws-lambda-nodejs-runtime-interface-client): handler loading (CommonJS and ES modules),
 * async / callback / sync handlers with callbackWaitsForEmptyEventLoop, the context object,
 * the console log format and the error payloads.
 *
 * This file is data shipped into the sandbox, not part of the lamina Python package.
 * Node built-in modules only.
 */

'use strict';

const http = require('http');
const util = require('util');
const path = require('path');
const fs = require('fs');

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

/* ------------------------------------------------------------------------------------------
 * Errors (same names and shapes as the AWS runtime)
 * ---------------------------------------------------------------------------------------- */

function _isError(obj) {
  return (
    obj &&
    obj.name &&
    obj.message &&
    obj.stack &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string'
  );
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** The body posted to /error and /init/error. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || _isError(error)) {
      return {
        errorType: error.name?.replaceAll('\x7F', '%7F'),
        errorMessage: error.message?.replaceAll('\x7F', '%7F'),
        trace: error.stack.replaceAll('\x7F', '%7F').split('\n'),
      };
    }
    return {
      errorType: typeof error,
      errorMessage: error.toString(),
      trace: [],
    };
  } catch (_err) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function _withEnumerableProperties(error) {
  if (error instanceof Error) {
    const ret = Object.assign(
      { errorType: error.name, errorMessage: error.message, code: error.code },
      error,
    );
    if (typeof error.stack === 'string') {
      ret.stack = error.stack.split('\n');
    }
    return ret;
  }
  return error;
}

/** An error as it appears in the text log; always starts with a tab, like AWS. */
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => _withEnumerableProperties(v));
  } catch (_err) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

const Errors = {};
[
  class ImportModuleError extends Error {},
  class HandlerNotFound extends Error {},
  class MalformedHandlerName extends Error {},
  class UserCodeSyntaxError extends Error {},
  class MalformedStreamingHandler extends Error {},
  class InvalidStreamingOperation extends Error {},
  class NodeJsExit extends Error {
    constructor() {
      super(
        'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled. For more information, see https://nodejs.org/docs/latest/api/process.html#exit-codes',
      );
    }
  },
  class UnhandledPromiseRejection extends Error {
    constructor(reason, promise) {
      super(reason);
      this.reason = reason;
      this.promise = promise;
    }
  },
].forEach((e) => {
  Errors[e.name] = e;
  e.prototype.name = `Runtime.${e.name}`;
});

/* ------------------------------------------------------------------------------------------
 * Console patch: `<ISO time>\t<request id>\t<LEVEL>\t<message>` lines (\n inside a record
 * becomes \r so one record is one line), or JSON with AWS_LAMBDA_LOG_FORMAT=JSON, or the
 * framed protocol on $_LAMBDA_TELEMETRY_LOG_FD.
 * ---------------------------------------------------------------------------------------- */

const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID_SYMBOL = Symbol.for('aws.lambda.runtime.tenantId');
const getRequestId = () => global[REQUEST_ID_SYMBOL];
const setRequestId = (id) => (global[REQUEST_ID_SYMBOL] = id);
const getTenantId = () => global[TENANT_ID_SYMBOL];
const setTenantId = (id) => (global[TENANT_ID_SYMBOL] = id);

const structuredConsole = {};

const jsonErrorReplacer = (_, value) => {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
};

function formatJsonMessage(requestId, timestamp, level, tenantId, ...messageParams) {
  const result = { timestamp: timestamp, level: level.name, requestId: requestId };
  if (tenantId !== undefined && tenantId !== null) {
    result.tenantId = tenantId;
  }
  if (messageParams.length === 1) {
    result.message = messageParams[0];
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch (_) {
      result.message = util.format(result.message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(...messageParams);
  for (const param of messageParams) {
    if (param instanceof Error) {
      result.errorType = param?.constructor?.name ?? 'UnknownError';
      result.errorMessage = param.message;
      result.stackTrace = typeof param.stack === 'string' ? param.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(result);
}

const logTextToStdout = (level, message, ...params) => {
  const line = `${new Date().toISOString()}\t${getRequestId()}\t${level.name}\t${util.format(
    message,
    ...params,
  )}`.replace(/\n/g, '\r');
  process.stdout.write(line + '\n');
};

const logJsonToStdout = (level, message, ...params) => {
  const line = formatJsonMessage(
    getRequestId(),
    new Date().toISOString(),
    level,
    getTenantId(),
    message,
    ...params,
  ).replace(/\n/g, '\r');
  process.stdout.write(line + '\n');
};

function _framedWriter(fd, base, render) {
  const head = Buffer.alloc(16);
  return (level, message, ...params) => {
    const date = new Date();
    const bytes = Buffer.from(render(date, level, message, params), 'utf8');
    head.writeUInt32BE((base | level.tlvMask) >>> 0, 0);
    head.writeInt32BE(bytes.length, 4);
    head.writeBigInt64BE(BigInt(date.valueOf()) * 1000n, 8);
    fs.writeSync(fd, head);
    fs.writeSync(fd, bytes);
  };
}

function patchConsole() {
  const json = process.env['AWS_LAMBDA_LOG_FORMAT']?.toUpperCase() === 'JSON';
  let log;
  const telemetryFd = process.env['_LAMBDA_TELEMETRY_LOG_FD'];
  if (telemetryFd !== undefined && telemetryFd !== null) {
    delete process.env['_LAMBDA_TELEMETRY_LOG_FD'];
    const fd = parseInt(telemetryFd, 10);
    log = json
      ? _framedWriter(fd, 0xa55a0002, (date, level, message, params) =>
          formatJsonMessage(getRequestId(), date.toISOString(), level, getTenantId(), message, ...params),
        )
      : _framedWriter(
          fd,
          0xa55a0003,
          (date, level, message, params) =>
            `${date.toISOString()}\t${getRequestId()}\t${level.name}\t${util.format(message, ...params)}\n`,
        );
  } else {
    log = json ? logJsonToStdout : logTextToStdout;
  }

  const NopLog = () => {};
  const levels = Object.freeze({
    TRACE: { name: 'TRACE', priority: 1, tlvMask: 0b00100 },
    DEBUG: { name: 'DEBUG', priority: 2, tlvMask: 0b01000 },
    INFO: { name: 'INFO', priority: 3, tlvMask: 0b01100 },
    WARN: { name: 'WARN', priority: 4, tlvMask: 0b10000 },
    ERROR: { name: 'ERROR', priority: 5, tlvMask: 0b10100 },
    FATAL: { name: 'FATAL', priority: 6, tlvMask: 0b11000 },
  });
  const minLevel = levels[process.env['AWS_LAMBDA_LOG_LEVEL']?.toUpperCase()] ?? levels.TRACE;
  const make = (level) =>
    level.priority >= minLevel.priority ? (msg, ...params) => log(level, msg, ...params) : NopLog;

  console.trace = make(levels.TRACE);
  console.debug = make(levels.DEBUG);
  console.info = make(levels.INFO);
  console.log = console.info;
  console.warn = make(levels.WARN);
  console.error = make(levels.ERROR);
  console.fatal = (msg, ...params) => log(levels.FATAL, msg, ...params);

  structuredConsole.logError = json
    ? (_, err) => console.error(intoError(err))
    : (msg, err) => console.error(msg, toFormatted(intoError(err)));
}

/* ------------------------------------------------------------------------------------------
 * Runtime API client: a keep-alive agent, so invokes reuse one TCP connection.
 * ---------------------------------------------------------------------------------------- */

function _headerSafe(value) {
  // Node rejects header values with characters outside latin-1 / with control characters.
  return String(value).replace(/[^\t\x20-\x7e\x80-\xff]/g, (c) => encodeURIComponent(c));
}

function _diag(msg) {
  try {
    fs.writeSync(2, `[lamina-bootstrap] ${msg}\n`);
  } catch (_) {
    /* nothing to do */
  }
}

class RAPIDClient {
  constructor(hostnamePort) {
    const idx = hostnamePort.lastIndexOf(':');
    let hostname = idx >= 0 ? hostnamePort.slice(0, idx) : hostnamePort;
    const port = idx >= 0 ? parseInt(hostnamePort.slice(idx + 1), 10) : 80;
    if (hostname.startsWith('[') && hostname.endsWith(']')) hostname = hostname.slice(1, -1);
    this.hostname = hostname;
    this.port = port;
    // Sequential requests share one socket (LIFO reuse); a second socket is only opened if
    // a crash report has to be sent while /next is still pending.
    this.agent = new http.Agent({ keepAlive: true, maxFreeSockets: 1, scheduling: 'lifo' });
  }

  _request(method, urlPath, body, headers) {
    const attempt = (retry) =>
      new Promise((resolve, reject) => {
        const opts = {
          hostname: this.hostname,
          port: this.port,
          path: urlPath,
          method: method,
          agent: this.agent,
          headers: headers || {},
        };
        const req = http.request(opts, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        });
        req.on('socket', (s) => s.setNoDelay(true));
        req.on('error', (e) => {
          // A kept-alive socket the server had already closed: retry once on a fresh one.
          if (retry && req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
            resolve(attempt(false));
          } else {
            reject(e);
          }
        });
        req.end(body);
      });
    return attempt(true);
  }

  async nextInvocation() {
    const endpoint = `${API_PREFIX}/invocation/next`;
    const res = await this._request('GET', endpoint);
    if (res.status !== 200) {
      throw new Error(
        `Request to Lambda Runtime '${endpoint}' endpoint failed. Reason: '${res.status}'. Response body: '${res.body}'`,
      );
    }
    return { bodyJson: res.body.toString('utf8'), headers: res.headers };
  }

  _post(endpoint, bodyString, headers, callback) {
    const body = Buffer.from(bodyString, 'utf8');
    const allHeaders = Object.assign(
      { 'Content-Type': 'application/json', 'Content-Length': body.length },
      headers || {},
    );
    this._request('POST', endpoint, body, allHeaders).then(
      (res) => {
        if (res.status < 200 || res.status >= 300) {
          // The platform rejected it (e.g. 413) and records the failure itself; carry on.
          _diag(
            `Request to Lambda Runtime '${endpoint}' endpoint failed. Reason: '${res.status}'. Response body: '${res.body}'`,
          );
        }
        callback();
      },
      (err) => {
        _diag(`Request to Lambda Runtime '${endpoint}' failed: ${err}`);
        process.exit(1);
      },
    );
  }

  postInvocationResponse(response, id, callback) {
    const bodyString = _trySerializeResponse(response);
    this._post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`, bodyString, {}, callback);
  }

  postInvocationError(error, id, callback) {
    const response = toRapidResponse(error);
    const bodyString = _trySerializeResponse(response);
    this._post(
      `${API_PREFIX}/invocation/${encodeURIComponent(id)}/error`,
      bodyString,
      { [ERROR_TYPE_HEADER]: _headerSafe(response.errorType) },
      callback,
    );
  }

  postInitError(error, callback) {
    const response = toRapidResponse(error);
    this._post(
      `${API_PREFIX}/init/error`,
      _trySerializeResponse(response),
      { [ERROR_TYPE_HEADER]: _headerSafe(response.errorType) },
      callback,
    );
  }
}

function _trySerializeResponse(body) {
  try {
    return JSON.stringify(body === undefined ? null : body);
  } catch (err) {
    throw new Error('Unable to stringify response body');
  }
}

/* ------------------------------------------------------------------------------------------
 * beforeExit listener (global, symbol-keyed, like AWS)
 * ---------------------------------------------------------------------------------------- */

const LISTENER_SYMBOL = Symbol.for('aws.lambda.beforeExit');
const NO_OP_LISTENER = () => {};
const BeforeExitListener = {
  invoke: () => global[LISTENER_SYMBOL](),
  reset: () => (global[LISTENER_SYMBOL] = NO_OP_LISTENER),
  set: (listener) => (global[LISTENER_SYMBOL] = listener),
};

/* ------------------------------------------------------------------------------------------
 * Loading the user's handler
 * ---------------------------------------------------------------------------------------- */

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;
const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

function _moduleRootAndHandler(fullHandlerString) {
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  return [moduleRoot, handlerString];
}

function _splitHandlerString(handler) {
  const match = handler.match(FUNCTION_EXPR);
  if (!match || match.length !== 3) {
    throw new Errors.MalformedHandlerName('Bad handler');
  }
  return [match[1], match[2]];
}

function _resolveHandler(object, nestedProperty) {
  return nestedProperty.split('.').reduce((nested, key) => nested && nested[key], object);
}

function _tryRequireFile(file, extension) {
  const p = file + (extension || '');
  return fs.existsSync(p) ? require(p) : undefined;
}

async function _tryAwaitImport(file, extension) {
  const p = file + (extension || '');
  if (fs.existsSync(p)) {
    return await import(require('url').pathToFileURL(p).href);
  }
  return undefined;
}

function _hasFolderPackageJsonTypeModule(folder) {
  if (folder.endsWith('/node_modules')) {
    return false;
  }
  const pj = path.join(folder, '/package.json');
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) {
        return pkg.type === 'module';
      }
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  if (folder === '/') {
    return false;
  }
  return _hasFolderPackageJsonTypeModule(path.resolve(folder, '..'));
}

function _hasPackageJsonTypeModule(file) {
  const jsPath = file + '.js';
  return fs.existsSync(jsPath)
    ? _hasFolderPackageJsonTypeModule(path.resolve(path.dirname(jsPath)))
    : false;
}

async function _tryRequire(appRoot, moduleRoot, module) {
  const lambdaStylePath = path.resolve(appRoot, moduleRoot, module);

  // Extensionless files are loaded via require.
  const extensionless = _tryRequireFile(lambdaStylePath);
  if (extensionless) {
    return extensionless;
  }

  // Unless the nearest package.json says "type": "module", .js files are CommonJS.
  const pjHasModule = _hasPackageJsonTypeModule(lambdaStylePath);
  if (!pjHasModule) {
    const loaded = _tryRequireFile(lambdaStylePath, '.js');
    if (loaded) {
      return loaded;
    }
  }

  const loaded =
    (pjHasModule && (await _tryAwaitImport(lambdaStylePath, '.js'))) ||
    (await _tryAwaitImport(lambdaStylePath, '.mjs')) ||
    _tryRequireFile(lambdaStylePath, '.cjs');
  if (loaded) {
    return loaded;
  }

  // Fall back to node's resolution from the app root (node_modules, NODE_PATH, ...).
  const nodeStylePath = require.resolve(module, { paths: [appRoot, moduleRoot] });
  return require(nodeStylePath);
}

function _installGlobalAwsLambda() {
  const v = process.env['AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA'];
  if (v === '1' || v === 'true') {
    return;
  }
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') {
        handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark);
      }
      return handler;
    },
    HttpResponseStream: class HttpResponseStream {
      static from() {
        throw new Errors.InvalidStreamingOperation('Response streaming is not supported by Lamina');
      }
    },
  };
}

async function _loadUserApp(appRoot, moduleRoot, module) {
  _installGlobalAwsLambda();
  try {
    return await _tryRequire(appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new Errors.UserCodeSyntaxError(e);
    } else if (e.code !== undefined && e.code === 'MODULE_NOT_FOUND') {
      throw new Errors.ImportModuleError(e);
    }
    throw e;
  }
}

async function loadHandler(appRoot, fullHandlerString) {
  if (fullHandlerString.includes('..')) {
    throw new Errors.MalformedHandlerName(
      `'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const [moduleRoot, moduleAndHandler] = _moduleRootAndHandler(fullHandlerString);
  const [module, handlerPath] = _splitHandlerString(moduleAndHandler);

  const userApp = await _loadUserApp(appRoot, moduleRoot, module);
  const handlerFunc = _resolveHandler(userApp, handlerPath);

  if (!handlerFunc) {
    throw new Errors.HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  }
  if (typeof handlerFunc !== 'function') {
    throw new Errors.HandlerNotFound(`${fullHandlerString} is not a function`);
  }
  if (handlerFunc[HANDLER_STREAMING] !== undefined && handlerFunc[HANDLER_STREAMING] !== null &&
      handlerFunc[HANDLER_STREAMING] !== false) {
    throw new Errors.MalformedStreamingHandler('Response streaming is not supported by Lamina');
  }
  return handlerFunc;
}

function _isAsync(handler) {
  try {
    return Boolean(
      handler && typeof handler === 'function' && handler.constructor &&
        handler.constructor.name === 'AsyncFunction',
    );
  } catch (_) {
    return false;
  }
}

/* ------------------------------------------------------------------------------------------
 * Invoke context and the callback/context API
 * ---------------------------------------------------------------------------------------- */

function _parseJson(jsonString, name) {
  if (jsonString === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(jsonString);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function buildContext(headers, callbackContext) {
  if (headers['lambda-runtime-trace-id']) {
    process.env['_X_AMZN_TRACE_ID'] = headers['lambda-runtime-trace-id'];
  } else {
    delete process.env['_X_AMZN_TRACE_ID'];
  }
  const deadline = headers['lambda-runtime-deadline-ms'];
  return Object.assign(
    callbackContext,
    {
      functionVersion: process.env['AWS_LAMBDA_FUNCTION_VERSION'],
      functionName: process.env['AWS_LAMBDA_FUNCTION_NAME'],
      memoryLimitInMB: process.env['AWS_LAMBDA_FUNCTION_MEMORY_SIZE'],
      logGroupName: process.env['AWS_LAMBDA_LOG_GROUP_NAME'],
      logStreamName: process.env['AWS_LAMBDA_LOG_STREAM_NAME'],
    },
    {
      clientContext: _parseJson(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: _parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: headers['lambda-runtime-aws-request-id'],
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: function () {
        return deadline - Date.now();
      },
    },
  );
}

function _rawCallbackContext(client, id, scheduleNext) {
  const postError = (err, callback) => {
    structuredConsole.logError('Invoke Error', err);
    client.postInvocationError(err, id, callback);
  };

  let isCompleteInvoked = false;
  const complete = (result, callback) => {
    if (isCompleteInvoked) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    isCompleteInvoked = true;
    client.postInvocationResponse(result, id, callback);
  };

  let waitForEmptyEventLoop = true;

  const callback = function (err, result) {
    BeforeExitListener.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else if (!waitForEmptyEventLoop) {
      complete(result, scheduleNext);
    } else {
      BeforeExitListener.set(() => {
        setImmediate(() => {
          complete(result, scheduleNext);
        });
      });
    }
  };

  const done = (err, result) => {
    BeforeExitListener.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else {
      complete(result, scheduleNext);
    }
  };
  const succeed = (result) => done(null, result);
  const fail = (err) => {
    if (err === undefined || err === null) {
      done('handled');
    } else {
      done(err, null);
    }
  };

  const callbackContext = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: succeed,
    fail: fail,
    done: done,
  };

  return [callback, callbackContext, () => (isCompleteInvoked = true)];
}

/** Only the first call to any of callback / succeed / fail / done counts. */
function buildCallbackContext(client, id, scheduleNext) {
  const [callback, callbackContext, markCompleted] = _rawCallbackContext(client, id, scheduleNext);
  let finished = false;
  const onlyAllowFirstCall = (toWrap) =>
    function () {
      if (!finished) {
        toWrap.apply(null, arguments);
        finished = true;
      }
    };
  callbackContext.succeed = onlyAllowFirstCall(callbackContext.succeed);
  callbackContext.fail = onlyAllowFirstCall(callbackContext.fail);
  callbackContext.done = onlyAllowFirstCall(callbackContext.done);
  return [onlyAllowFirstCall(callback), callbackContext, markCompleted];
}

function _isPromise(obj) {
  return obj && obj.then && typeof obj.then === 'function';
}

class Runtime {
  constructor(client, handler, errorCallbacks) {
    this.client = client;
    this.handler = handler;
    this.isAsync = _isAsync(handler);
    this.errorCallbacks = errorCallbacks;
  }

  scheduleIteration() {
    setImmediate(() => {
      this.handleOnce().then(
        () => {},
        (err) => {
          console.log(`Unexpected Top Level Error: ${err.toString()}`);
          this.errorCallbacks.uncaughtException(err);
        },
      );
    });
  }

  async handleOnce() {
    const { bodyJson, headers } = await this.client.nextInvocation();
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) {
      throw new Error('invocation id is missing or invalid');
    }
    setRequestId(invokeId);
    setTenantId(headers['lambda-runtime-aws-tenant-id']);

    const [callback, callbackContext, markCompleted] = buildCallbackContext(
      this.client,
      invokeId,
      this.scheduleIteration.bind(this),
    );

    try {
      this._setErrorCallbacks(invokeId);
      this._setDefaultExitListener(invokeId, markCompleted);
      const context = buildContext(headers, callbackContext);
      const result = this.handler(JSON.parse(bodyJson), context, callback);
      if (_isPromise(result)) {
        result.then(callbackContext.succeed, callbackContext.fail).catch(callbackContext.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  _setErrorCallbacks(invokeId) {
    this.errorCallbacks.uncaughtException = (error) => {
      this.client.postInvocationError(error, invokeId, () => process.exit(129));
    };
    this.errorCallbacks.unhandledRejection = (error) => {
      this.client.postInvocationError(error, invokeId, () => process.exit(128));
    };
  }

  /** Used when the loop drains without the handler having reported a result. */
  _setDefaultExitListener(invokeId, markCompleted) {
    BeforeExitListener.set(() => {
      markCompleted();
      if (this.isAsync) {
        const nodeJsExitError = new Errors.NodeJsExit();
        structuredConsole.logError('Invoke Error', nodeJsExitError);
        this.client.postInvocationError(nodeJsExitError, invokeId, () => this.scheduleIteration());
      } else {
        this.client.postInvocationResponse(null, invokeId, () => this.scheduleIteration());
      }
    });
  }
}

/* ------------------------------------------------------------------------------------------
 * Entry point
 * ---------------------------------------------------------------------------------------- */

async function main() {
  patchConsole();
  const api = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!api) {
    _diag('AWS_LAMBDA_RUNTIME_API is not set');
    process.exit(1);
  }
  const client = new RAPIDClient(api);

  const errorCallbacks = {
    uncaughtException: (error) => client.postInitError(error, () => process.exit(129)),
    unhandledRejection: (error) => client.postInitError(error, () => process.exit(128)),
  };

  process.on('uncaughtException', (error) => {
    structuredConsole.logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new Errors.UnhandledPromiseRejection(reason, promise);
    structuredConsole.logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });

  BeforeExitListener.reset();
  process.on('beforeExit', BeforeExitListener.invoke);

  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const handlerString = process.env._HANDLER || process.argv[2] || '';

  let handlerFunc;
  try {
    handlerFunc = await loadHandler(appRoot, handlerString);
  } catch (err) {
    // AWS surfaces a failed load as an uncaught exception: log, post /init/error, exit 129.
    structuredConsole.logError('Uncaught Exception', err);
    errorCallbacks.uncaughtException(err);
    return;
  }

  if (
    process.env.AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING === undefined &&
    handlerFunc.length === 3 &&
    !_isAsync(handlerFunc)
  ) {
    console.warn(
      `AWS Lambda plans to remove support for callback-based function handlers starting with Node.js 24. You will need to update this function to use an async handler to use Node.js 24 or later. For more information and to provide feedback on this change, see https://github.com/aws/aws-lambda-nodejs-runtime-interface-client/issues/137. To disable this warning, set the AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING environment variable.`,
    );
  }

  new Runtime(client, handlerFunc, errorCallbacks).scheduleIteration();
}

main();
