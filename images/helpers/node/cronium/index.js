/**
 * cronium runtime helper for Node.js jobs (Node 18+, no dependencies).
 *
 *   const cronium = require('cronium');
 *   const data = await cronium.input();            // any JSON value, or null
 *   const n = await cronium.getVariable('count');  // null when the variable does not exist
 *   await cronium.setVariable('count', (n ?? 0) + 1);
 *   await cronium.setCondition(true);
 *   const ctx = await cronium.event();              // { executionId, jobId, ..., metadata }
 *   await cronium.output({ processed: 3 });
 *
 * Environment (read at the first call, never at require time):
 *   CRONIUM_RUNTIME_API      base URL of the runtime API (default http://runtime-api:8081)
 *   CRONIUM_EXECUTION_TOKEN  the execution's token, sent as "Authorization: Bearer <token>" (required)
 *   CRONIUM_EXECUTION_ID     the execution id used in the URL paths (required)
 *
 * Tuning knobs (optional; constructor options win over them):
 *   CRONIUM_HELPER_TIMEOUT   seconds a request may take in total (default 30; 0 = no limit)
 *   CRONIUM_HELPER_RETRIES   retries after the first attempt (default 3, so at most 4 attempts)
 *   CRONIUM_HELPER_BACKOFF   first retry delay in seconds; doubles on each retry (default 1)
 *   CRONIUM_DEBUG            when set (non-empty), log each request (method and path) to stderr
 *
 * Behaviour:
 *   - 5xx responses (except 501) and timeouts are retried with exponential backoff; every other
 *     error status (4xx) rejects at once with a CroniumAPIError carrying the server's message.
 *   - A connection that cannot be made (ECONNREFUSED, unknown host) is retried the same way and then
 *     rejects with CroniumConnectionError ("could not reach the runtime API at <url>"). A connection
 *     that breaks after the request was sent is retried only for idempotent calls (all but
 *     executeToolAction).
 *   - getVariable resolves to null for a missing variable (404) and for a stored null; 0, false and
 *     "" are values and come back as they are.
 *   - The token never appears in an error message or a log line.
 */
'use strict';

const http = require('http');
const https = require('https');

const VERSION = '1.0.0';
const DEFAULT_API_URL = 'http://runtime-api:8081';
const DEFAULT_TIMEOUT = 30;
const DEFAULT_MAX_RETRIES = 3;
const DEFAULT_BACKOFF = 1;
const MAX_BACKOFF = 30;

// ------------------------------------------------------------------------------------------------
// Errors

class CroniumError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CroniumError';
  }
}

class CroniumConfigError extends CroniumError {
  constructor(message) {
    super(message);
    this.name = 'CroniumConfigError';
  }
}

class CroniumAPIError extends CroniumError {
  constructor(statusCode, message, errorCode = null, attempts = 1) {
    let text = `API Error (${statusCode}): ${message}`;
    if (attempts > 1) text += ` (gave up after ${attempts} attempts)`;
    super(text);
    this.name = 'CroniumAPIError';
    this.statusCode = statusCode;
    this.apiMessage = message;
    this.errorCode = errorCode;
    this.attempts = attempts;
  }
}

/** 409: a write with ifVersion found the variable at another version; nothing was written. */
class CroniumConflictError extends CroniumAPIError {
  constructor(...args) {
    super(...args);
    this.name = 'CroniumConflictError';
  }
}

class CroniumTimeoutError extends CroniumError {
  constructor(message) {
    super(message);
    this.name = 'CroniumTimeoutError';
  }
}

class CroniumConnectionError extends CroniumError {
  constructor(message) {
    super(message);
    this.name = 'CroniumConnectionError';
  }
}

// ------------------------------------------------------------------------------------------------
// Internals

function envNumber(name, fallback) {
  const raw = (process.env[name] || '').trim();
  if (raw === '') return fallback;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

function quoteSegment(segment) {
  let quoted = encodeURIComponent(segment);
  if (quoted === '.' || quoted === '..') quoted = quoted.replace(/\./g, '%2E');
  return quoted;
}

function checkKey(key) {
  if (typeof key !== 'string' || key === '') {
    throw new CroniumError(`variable key must be a non-empty string, got ${JSON.stringify(key)}`);
  }
  return key;
}

function toJSON(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new CroniumError(`value is not JSON-serialisable: ${err.message}`);
  }
  if (text === undefined) throw new CroniumError('value is not JSON-serialisable');
  return text;
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

function toCondition(condition) {
  if (typeof condition === 'boolean') return condition;
  if (typeof condition === 'string') {
    const word = condition.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
    throw new CroniumError(
      `invalid condition ${JSON.stringify(condition)}: use true/false (or "true"/"false", 1/0, yes/no, on/off)`,
    );
  }
  return Boolean(condition);
}

/** Value of `key` in `obj`, or null when absent/undefined (falsy values are kept). */
function field(obj, key) {
  if (obj === null || typeof obj !== 'object' || !(key in obj) || obj[key] === undefined) return null;
  return obj[key];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Attempt failure: `retry` says whether another attempt may be made.
class AttemptFailure extends Error {
  constructor(error, retry) {
    super(error.message);
    this.error = error;
    this.retry = retry;
  }
}

const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

// ------------------------------------------------------------------------------------------------
// Client

class Cronium {
  /**
   * @param {object} [options]
   * @param {string} [options.apiUrl]       default: CRONIUM_RUNTIME_API or http://runtime-api:8081
   * @param {string} [options.token]        default: CRONIUM_EXECUTION_TOKEN
   * @param {string} [options.executionId]  default: CRONIUM_EXECUTION_ID
   * @param {number} [options.timeout]      seconds per request (default CRONIUM_HELPER_TIMEOUT or 30)
   * @param {number} [options.maxRetries]   retries after the first attempt (default CRONIUM_HELPER_RETRIES or 3)
   * @param {number} [options.backoff]      first retry delay in seconds (default CRONIUM_HELPER_BACKOFF or 1)
   *
   * Creating a client never fails: a missing CRONIUM_EXECUTION_TOKEN / CRONIUM_EXECUTION_ID is
   * reported (as CroniumConfigError) by the first call that needs it.
   */
  constructor(options = {}) {
    const opts = options || {};
    this._apiUrl = opts.apiUrl;
    this._executionId = opts.executionId;
    // Keep the token off enumerable properties so that console.log(client) does not show it.
    Object.defineProperty(this, '_token', { value: opts.token, writable: true, enumerable: false });
    Object.defineProperty(this, '_config', { value: null, writable: true, enumerable: false });
    this.timeout = opts.timeout != null ? Number(opts.timeout) : envNumber('CRONIUM_HELPER_TIMEOUT', DEFAULT_TIMEOUT);
    this.maxRetries =
      opts.maxRetries != null ? Number(opts.maxRetries) : envNumber('CRONIUM_HELPER_RETRIES', DEFAULT_MAX_RETRIES);
    this.backoff = opts.backoff != null ? Number(opts.backoff) : envNumber('CRONIUM_HELPER_BACKOFF', DEFAULT_BACKOFF);
  }

  get apiUrl() {
    const raw = this._apiUrl != null ? String(this._apiUrl) : process.env.CRONIUM_RUNTIME_API || '';
    return (raw.trim() || DEFAULT_API_URL).replace(/\/+$/, '');
  }

  get executionId() {
    const value = this._executionId != null ? this._executionId : process.env.CRONIUM_EXECUTION_ID;
    return value ? String(value) : null;
  }

  _resolveConfig() {
    if (this._config) return this._config;
    const token = this._token != null ? String(this._token) : process.env.CRONIUM_EXECUTION_TOKEN || '';
    const executionId = this.executionId || '';
    const missing = [];
    if (!token) missing.push('CRONIUM_EXECUTION_TOKEN');
    if (!executionId) missing.push('CRONIUM_EXECUTION_ID');
    if (missing.length) {
      throw new CroniumConfigError(
        `${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not set: the cronium helper needs ` +
          'CRONIUM_EXECUTION_TOKEN and CRONIUM_EXECUTION_ID to call the runtime API (cronium sets them in job containers)',
      );
    }
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new CroniumConfigError('CRONIUM_EXECUTION_TOKEN contains characters that cannot be sent in a header');
    }
    const apiUrl = this.apiUrl;
    let parsed;
    try {
      parsed = new URL(apiUrl);
    } catch (err) {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new CroniumConfigError(`CRONIUM_RUNTIME_API must be an http:// or https:// URL, got ${JSON.stringify(apiUrl)}`);
    }
    this._config = { apiUrl, parsed, token, executionId };
    return this._config;
  }

  _redact(text, token) {
    return token ? String(text).split(token).join('[REDACTED]') : String(text);
  }

  _delayMs(retryIndex) {
    return Math.min(this.backoff * 2 ** retryIndex, MAX_BACKOFF) * 1000;
  }

  _errorMessage(body, status, text, token) {
    let message = null;
    let code = null;
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      if (typeof body.message === 'string' && body.message) message = body.message;
      if (typeof body.error === 'string' && body.error) {
        code = body.error;
        if (message === null) message = body.error;
      } else if (body.error && typeof body.error === 'object' && typeof body.error.message === 'string') {
        if (message === null) message = body.error.message;
      }
    }
    if (message === null) {
      const snippet = String(text || '').trim().slice(0, 200);
      message = snippet || http.STATUS_CODES[status] || `HTTP ${status}`;
    }
    return { message: this._redact(message, token), code };
  }

  /** One HTTP exchange: resolves to the decoded body or rejects with an AttemptFailure. */
  _attempt(cfg, method, path, payload, idempotent, extraHeaders = {}) {
    const where = `the runtime API at ${cfg.apiUrl}`;
    const base = cfg.parsed;
    const transport = base.protocol === 'https:' ? https : http;
    const basePath = base.pathname.replace(/\/+$/, '');
    const headers = {
      Authorization: `Bearer ${cfg.token}`,
      Accept: 'application/json',
      'User-Agent': `cronium-helper-node/${VERSION}`,
      ...extraHeaders,
    };
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    const timeoutMs = this.timeout > 0 ? this.timeout * 1000 : 0;

    return new Promise((resolve, reject) => {
      let settled = false;
      let sent = false;
      const finish = (fn, value) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        fn(value);
      };
      const req = transport.request({
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || (base.protocol === 'https:' ? 443 : 80),
        path: basePath + path,
        method,
        headers,
        agent: false,
      });
      const onTimeout = () => {
        finish(
          reject,
          new AttemptFailure(
            new CroniumTimeoutError(`request to ${where} timed out after ${this.timeout}s (${method} ${path})`),
            true,
          ),
        );
        req.destroy();
      };
      const timer = timeoutMs > 0 ? setTimeout(onTimeout, timeoutMs) : null;

      req.on('error', (err) => {
        const code = err && err.code ? err.code : '';
        const neverSent = NEVER_SENT_CODES.has(code) || !sent;
        const detail = this._redact(code ? `${code} (${err.message})` : err.message, cfg.token);
        finish(
          reject,
          new AttemptFailure(new CroniumConnectionError(`could not reach ${where}: ${detail}`), neverSent || idempotent),
        );
      });
      req.on('finish', () => {
        sent = true;
      });
      req.on('response', (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', (err) => {
          finish(
            reject,
            new AttemptFailure(
              new CroniumConnectionError(`could not reach ${where}: ${this._redact(err.message, cfg.token)}`),
              idempotent,
            ),
          );
        });
        res.on('end', () => {
          const status = res.statusCode;
          const text = Buffer.concat(chunks).toString('utf8');
          let body = null;
          let parsedOk = true;
          if (text.trim() !== '') {
            try {
              body = JSON.parse(text);
            } catch (err) {
              parsedOk = false;
            }
          }
          if (status >= 200 && status < 300) {
            if (!parsedOk) {
              finish(
                reject,
                new AttemptFailure(new CroniumAPIError(status, 'the runtime API sent a response that is not JSON'), false),
              );
              return;
            }
            if (body && typeof body === 'object' && body.success === false) {
              const { message, code } = this._errorMessage(body, status, text, cfg.token);
              finish(reject, new AttemptFailure(new CroniumAPIError(status, message, code), false));
              return;
            }
            finish(resolve, body === null ? {} : body);
            return;
          }
          const { message, code } = this._errorMessage(parsedOk ? body : null, status, text, cfg.token);
          const retry = status >= 500 && status !== 501;
          const ErrorClass = status === 409 ? CroniumConflictError : CroniumAPIError;
          finish(reject, new AttemptFailure(new ErrorClass(status, message, code), retry));
        });
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async _request(method, pathTemplate, body, { idempotent = true, headers = {} } = {}) {
    const cfg = this._resolveConfig();
    const path = pathTemplate.replace('{id}', quoteSegment(cfg.executionId));
    const payload = body === undefined ? undefined : toJSON(body);
    const attempts = Math.max(0, Math.floor(this.maxRetries)) + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (process.env.CRONIUM_DEBUG) process.stderr.write(`cronium: ${method} ${path} (attempt ${attempt}/${attempts})\n`);
      try {
        return await this._attempt(cfg, method, path, payload, idempotent, headers);
      } catch (failure) {
        if (!(failure instanceof AttemptFailure)) throw failure;
        let error = failure.error;
        if (!failure.retry || attempt === attempts) {
          if (failure.retry && attempt > 1) {
            if (error instanceof CroniumAPIError) {
              error = new CroniumAPIError(error.statusCode, error.apiMessage, error.errorCode, attempt);
            } else {
              error = new error.constructor(`${error.message} (gave up after ${attempt} attempts)`);
            }
          }
          throw error;
        }
        await sleep(this._delayMs(attempt - 1));
      }
    }
    throw new CroniumError('unreachable');
  }

  // -- API ---------------------------------------------------------------------------------------

  /** The execution's input (any JSON value), or null. */
  async input() {
    const result = await this._request('GET', '/executions/{id}/input');
    return field(result, 'data');
  }

  /** Set the execution's output (any JSON value). */
  async output(data) {
    await this._request('POST', '/executions/{id}/output', { data: data === undefined ? null : data });
  }

  /** A variable's value; null when it does not exist (or holds null). */
  async getVariable(key) {
    return (await this.getVariableVersion(key)).value;
  }

  /** {value, version}: the version to pass as ifVersion; {value: null, version: 0} when it does not exist. */
  async getVariableVersion(key) {
    checkKey(key);
    let result;
    try {
      result = await this._request('GET', `/executions/{id}/variables/${quoteSegment(key)}`);
    } catch (err) {
      if (err instanceof CroniumAPIError && err.statusCode === 404) return { value: null, version: 0 };
      throw err;
    }
    const data = field(result, 'data');
    return { value: field(data, 'value'), version: Number(field(data, 'version') || 0) };
  }

  /** Store a variable (any JSON value); resolves to its new version. With {ifVersion}, only while the
   * variable is at that version (0: only if it does not exist), else CroniumConflictError. */
  async setVariable(key, value, { ifVersion } = {}) {
    checkKey(key);
    const headers = ifVersion === undefined || ifVersion === null ? {} : { 'If-Match': `"${Number(ifVersion)}"` };
    const result = await this._request('PUT', `/executions/{id}/variables/${quoteSegment(key)}`, {
      value: value === undefined ? null : value,
    }, { headers });
    const version = field(result, 'version');
    return typeof version === 'number' ? version : null;
  }

  /** Add `by` atomically (missing or null counts as 0); resolves to the new value. */
  async incrementVariable(key, by = 1) {
    checkKey(key);
    if (typeof by !== 'number' || !Number.isFinite(by)) {
      throw new CroniumError(`incrementVariable: 'by' must be a finite number, got ${typeof by}`);
    }
    return this._update(key, 'increment', { by }, (current) => {
      if (current === null) return by;
      const number = typeof current === 'string' && /^\s*-?[0-9]+(\.[0-9]+)?\s*$/.test(current) ? Number(current) : current;
      if (typeof number !== 'number') {
        throw new CroniumError(`incrementVariable: variable '${key}' holds ${typeof current}, not a number`);
      }
      return number + by;
    });
  }

  /** Append atomically to a list (the item) or a string (separator + item); resolves to the new value. */
  async appendVariable(key, value, separator = '') {
    checkKey(key);
    return this._update(key, 'append', { value: value === undefined ? null : value, separator }, (current) => {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      if (current === null) return value;
      if (Array.isArray(current)) return current.concat([value]);
      if (typeof current === 'object') throw new CroniumError(`appendVariable: variable '${key}' holds an object`);
      if (typeof current === 'string') return current === '' ? text : current + separator + text;
      return JSON.stringify(current) + separator + text;
    });
  }

  /** The atomic route; on a sidecar older than it (404), read, change, write (not atomic). */
  async _update(key, route, body, change) {
    let result;
    try {
      result = await this._request('POST', `/executions/{id}/variables/${quoteSegment(key)}/${route}`, body,
        { idempotent: false });
    } catch (err) {
      if (!(err instanceof CroniumAPIError) || err.statusCode !== 404) throw err;
      const updated = change(await this.getVariable(key));
      await this.setVariable(key, updated);
      return updated;
    }
    return field(field(result, 'data'), 'value');
  }

  /**
   * Remove a variable (DELETE); resolves to true when it was set, false when it was not. A sidecar
   * older than the DELETE route (404 without `variable_not_found`, or 405) gets a stored null instead.
   */
  async deleteVariable(key) {
    checkKey(key);
    try {
      await this._request('DELETE', '/executions/{id}/variables/' + quoteSegment(key));
    } catch (err) {
      if (!(err instanceof CroniumAPIError)) throw err;
      if (err.statusCode === 404 && err.errorCode === 'variable_not_found') return false;
      if (err.statusCode !== 404 && err.statusCode !== 405) throw err;
      await this.setVariable(key, null);
    }
    return true;
  }

  /** Set the execution's condition (true/false; "true"/"false", "yes"/"no", 1/0 are accepted). */
  async setCondition(condition) {
    await this._request('POST', '/executions/{id}/condition', { condition: toCondition(condition) });
  }

  /** The execution context: executionId, jobId, jobName, jobType, namespace, startTime, metadata. */
  async event() {
    const result = await this._request('GET', '/executions/{id}/context');
    const data = field(result, 'data');
    return data === null ? {} : data;
  }

  /** Run a tool action through the runtime API; resolves to its `data`. */
  async executeToolAction(tool, action, config) {
    const result = await this._request(
      'POST',
      '/tool-actions/execute',
      { tool, action, params: config == null ? {} : config },
      { idempotent: false },
    );
    return field(result, 'data');
  }

  /** Send an email with the `email` tool: sendEmail({to, subject, body, ...extras}). */
  async sendEmail({ to, subject, body, ...extras } = {}) {
    const config = { to: Array.isArray(to) ? to : [to], subject, body, ...extras };
    return this.executeToolAction('email', 'send_message', config);
  }

  /** Send a Slack message with the `slack` tool: sendSlackMessage({channel, text, ...extras}). */
  async sendSlackMessage({ channel, text, ...extras } = {}) {
    return this.executeToolAction('slack', 'send_message', { channel, text, ...extras });
  }

  /** Send a Discord message with the `discord` tool: sendDiscordMessage({channelId, content, ...extras}). */
  async sendDiscordMessage({ channelId, content, ...extras } = {}) {
    return this.executeToolAction('discord', 'send_message', { channelId, content, ...extras });
  }

  toJSON() {
    return { apiUrl: this.apiUrl, executionId: this.executionId };
  }
}

// ------------------------------------------------------------------------------------------------
// Exports: the class, a default instance (created on first use) and shortcuts bound to it.

let defaultInstance = null;
function getDefault() {
  if (defaultInstance === null) defaultInstance = new Cronium();
  return defaultInstance;
}

module.exports = Cronium;
module.exports.Cronium = Cronium;
Object.defineProperty(module.exports, 'cronium', { enumerable: true, get: getDefault });
module.exports.getDefault = getDefault;
module.exports.input = () => getDefault().input();
module.exports.output = (data) => getDefault().output(data);
module.exports.getVariable = (key) => getDefault().getVariable(key);
module.exports.setVariable = (key, value, options) => getDefault().setVariable(key, value, options);
module.exports.getVariableVersion = (key) => getDefault().getVariableVersion(key);
module.exports.incrementVariable = (key, by) => getDefault().incrementVariable(key, by);
module.exports.appendVariable = (key, value, separator) => getDefault().appendVariable(key, value, separator);
module.exports.deleteVariable = (key) => getDefault().deleteVariable(key);
module.exports.setCondition = (condition) => getDefault().setCondition(condition);
module.exports.event = () => getDefault().event();
module.exports.executeToolAction = (tool, action, config) => getDefault().executeToolAction(tool, action, config);
module.exports.sendEmail = (options) => getDefault().sendEmail(options);
module.exports.sendSlackMessage = (options) => getDefault().sendSlackMessage(options);
module.exports.sendDiscordMessage = (options) => getDefault().sendDiscordMessage(options);
module.exports.CroniumError = CroniumError;
module.exports.CroniumAPIError = CroniumAPIError;
module.exports.CroniumConflictError = CroniumConflictError;
module.exports.CroniumTimeoutError = CroniumTimeoutError;
module.exports.CroniumConnectionError = CroniumConnectionError;
module.exports.CroniumConfigError = CroniumConfigError;
module.exports.VERSION = VERSION;
