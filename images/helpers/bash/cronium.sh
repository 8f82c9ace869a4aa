# shellcheck shell=bash
# cronium.sh -- cronium runtime helper for bash jobs.
#
# Opt-in: nothing sources this file for you. In a job script:
#
#     source cronium.sh                      # (it is on PATH in the cronium/bash image)
#     input=$(cronium_input)                 # the execution's input as JSON ("null" when none)
#     count=$(cronium_get_variable count)    # JSON value, "null" when the variable does not exist
#     cronium_increment_variable count       # prints the new value
#     cronium_set_variable greeting "hello"  # not valid JSON -> stored as the JSON string "hello"
#     cronium_set_condition true
#     cronium_output '{"processed": 3}'
#
# Needs bash, curl and jq. Sourcing never fails and never exits your shell: a missing tool or
# environment variable is reported (on stderr, return status 1) by the first call that needs it.
# Internal names all start with _cronium_; the file defines no global variables.
#
# Environment (read at each call):
#   CRONIUM_RUNTIME_API      base URL of the runtime API (default http://runtime-api:8081)
#   CRONIUM_EXECUTION_TOKEN  the execution's token, sent as "Authorization: Bearer <token>" (required);
#                            it is passed to curl on stdin, never on the command line
#   CRONIUM_EXECUTION_ID     the execution id used in the URL paths (required)
# Tuning knobs (optional):
#   CRONIUM_HELPER_TIMEOUT   seconds a request may take in total (curl --max-time; default 30; 0 = no limit)
#   CRONIUM_HELPER_RETRIES   retries after the first attempt (default 3, so at most 4 attempts)
#   CRONIUM_HELPER_BACKOFF   first retry delay in seconds (fractions allowed); doubles on each retry (default 1)
#   CRONIUM_DEBUG            when set (non-empty), log each request (method and path) to stderr
#
# Behaviour:
#   - 5xx answers (except 501) and timeouts (curl exit 28) are retried with exponential backoff;
#     other error statuses (4xx) fail at once with the server's message on stderr.
#   - A connection that cannot be made (refused, unknown host) is retried the same way and then
#     fails with "could not reach the runtime API at <url>". A connection that breaks after the
#     request was sent is retried only for idempotent calls (all but tool actions).
#   - Values: an argument that is one valid JSON text (strict: 007 or NaN are not numbers) is sent
#     as that JSON value; anything else is sent as a JSON string. To store the *string* "true" or
#     "42", pass it JSON-quoted: cronium_set_variable k '"42"'.
#   - Output values are printed as compact JSON (strings keep their quotes); pass -r to
#     cronium_input / cronium_get_variable to print strings without quotes (jq -r).
#   - The token is never printed, not even in part.
#
# Functions:
#   cronium_input [-r]                               the execution's input
#   cronium_output <json>                            set the execution's output
#   cronium_get_variable [-r] <key>                  a variable's value ("null" when missing)
#   cronium_set_variable <key> <value>               store a variable
#   cronium_delete_variable <key>                    remove a variable (status 0 also when it was not set;
#                                                    a sidecar without the DELETE route gets a stored null)
#   cronium_variable_exists <key>                    status 0 if set and not null, 1 if not, 2 on error
#   cronium_increment_variable <key> [n]             add n (default 1; missing counts as 0), print the result
#                                                    (atomic on the sidecar; read-modify-write on older ones)
#   cronium_append_variable <key> <value> [sep]      append to a string (with sep) or to a list (atomic, ditto)
#   cronium_get_variable_version <key>               the variable's version (0 when missing)
#   cronium_set_variable_if_version <key> <version> <value>   store only if still at <version> (0: only if
#                                                    missing); fails with "API Error (409)" otherwise
#   cronium_set_condition <true|false|1|0|yes|no|on|off>
#   cronium_event                                    the execution context (JSON object)
#   cronium_event_field <field>                      one context field (dotted path ok; strings printed raw,
#                                                    nothing for null/missing)
#   cronium_execute_tool_action <tool> <action> [json]  run a tool action, print its data
#   cronium_send_email <to,csv> <subject> <body> [--cc csv] [--bcc csv] [--html]
#   cronium_send_slack_message <channel> <text> [--username v] [--icon-emoji v] [--icon-url v]
#   cronium_send_discord_message <channel-id> <content> [--embed json]
#   cronium_info                                     helper version and configuration (never the token)

if [ -z "${BASH_VERSION-}" ]; then
    echo "cronium.sh: needs bash (source it from a bash script)" >&2
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi

if [[ "${BASH_SOURCE[0]-}" == "${0-}" ]]; then
    echo "cronium.sh: source this file (source cronium.sh) instead of running it" >&2
    exit 1
fi

# ------------------------------------------------------------------------------------------------
# internals

_cronium_version() { printf '%s\n' "1.0.0"; }

_cronium_err() { printf 'cronium: %s\n' "$*" >&2; }

_cronium_api_url() {
    local _cronium_u="${CRONIUM_RUNTIME_API-}"
    [[ -z "$_cronium_u" ]] && _cronium_u="http://runtime-api:8081"
    while [[ "$_cronium_u" == */ ]]; do _cronium_u="${_cronium_u%/}"; done
    printf '%s' "$_cronium_u"
}

# Checks tools and environment; prints a message and returns 1 when something is missing.
_cronium_check() {
    local _cronium_tool _cronium_missing=""
    for _cronium_tool in curl jq; do
        if ! command -v "$_cronium_tool" >/dev/null 2>&1; then
            _cronium_err "$_cronium_tool is required by cronium.sh but is not installed"
            return 1
        fi
    done
    [[ -z "${CRONIUM_EXECUTION_TOKEN-}" ]] && _cronium_missing="CRONIUM_EXECUTION_TOKEN"
    if [[ -z "${CRONIUM_EXECUTION_ID-}" ]]; then
        _cronium_missing="${_cronium_missing:+$_cronium_missing and }CRONIUM_EXECUTION_ID"
    fi
    if [[ -n "$_cronium_missing" ]]; then
        local _cronium_verb="is"
        [[ "$_cronium_missing" == *" and "* ]] && _cronium_verb="are"
        _cronium_err "$_cronium_missing $_cronium_verb not set: the cronium helper needs CRONIUM_EXECUTION_TOKEN and CRONIUM_EXECUTION_ID to call the runtime API (cronium sets them in job containers)"
        return 1
    fi
    if [[ "$CRONIUM_EXECUTION_TOKEN" == *[![:graph:]]* ]]; then
        _cronium_err "CRONIUM_EXECUTION_TOKEN contains characters that cannot be sent in a header"
        return 1
    fi
    local _cronium_u
    _cronium_u="$(_cronium_api_url)"
    if [[ "$_cronium_u" != http://?* && "$_cronium_u" != https://?* ]]; then
        _cronium_err "CRONIUM_RUNTIME_API must be an http:// or https:// URL, got '$_cronium_u'"
        return 1
    fi
    return 0
}

# URL-encode one path segment (pure bash: byte by byte in the C locale).
_cronium_urlencode() {
    local LC_ALL=C _cronium_s="$1" _cronium_o="" _cronium_c _cronium_i
    case "$_cronium_s" in
        .) printf '%s' "%2E"; return 0 ;;
        ..) printf '%s' "%2E%2E"; return 0 ;;
    esac
    for ((_cronium_i = 0; _cronium_i < ${#_cronium_s}; _cronium_i++)); do
        _cronium_c="${_cronium_s:_cronium_i:1}"
        case "$_cronium_c" in
            [A-Za-z0-9._~-]) _cronium_o+="$_cronium_c" ;;
            *)
                printf -v _cronium_c '%%%02X' "'$_cronium_c"
                _cronium_o+="$_cronium_c"
                ;;
        esac
    done
    printf '%s' "$_cronium_o"
}

# Print $1 as a JSON string (read through stdin: no argv size limit).
_cronium_json_string() { printf '%s' "$1" | jq -Rsc '.'; }

# Print $1 as JSON: itself when it is exactly one (strict) JSON text, otherwise as a JSON string.
_cronium_json_value() {
    local _cronium_v="$1" _cronium_n
    case "$_cronium_v" in
        true | false | null) printf '%s' "$_cronium_v"; return 0 ;;
    esac
    if [[ "$_cronium_v" =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$ ]]; then
        printf '%s' "$_cronium_v"
        return 0
    fi
    if [[ "$_cronium_v" =~ ^[[:space:]]*[\[\{\"] ]]; then
        _cronium_n="$(printf '%s' "$_cronium_v" | jq -s 'length' 2>/dev/null)" || _cronium_n=""
        if [[ "$_cronium_n" == "1" ]]; then
            printf '%s' "$_cronium_v"
            return 0
        fi
    fi
    _cronium_json_string "$_cronium_v"
}

# True when $1 is exactly one JSON text (as far as jq can tell).
_cronium_is_json() {
    local _cronium_n
    _cronium_n="$(printf '%s' "$1" | jq -s 'length' 2>/dev/null)" || return 1
    [[ "$_cronium_n" == "1" ]]
}

_cronium_uint() { # <value> <default>: a non-negative integer or the default
    if [[ "${1-}" =~ ^[0-9]+$ ]]; then printf '%s' "$1"; else printf '%s' "$2"; fi
}

_cronium_unum() { # <value> <default>: a non-negative decimal number or the default
    if [[ "${1-}" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then printf '%s' "$1"; else printf '%s' "$2"; fi
}

# The message of an error body, or a short excerpt of it.
_cronium_body_message() { # <body> <status>
    local _cronium_m
    _cronium_m="$(printf '%s' "$1" | jq -r '
        if type == "object" then
            if (.message | type) == "string" and .message != "" then .message
            elif (.error | type) == "string" and .error != "" then .error
            elif (.error | type) == "object" and (.error.message | type) == "string" then .error.message
            else empty end
        else empty end' 2>/dev/null)" || _cronium_m=""
    if [[ -z "$_cronium_m" ]]; then
        _cronium_m="${1:0:200}"
        _cronium_m="${_cronium_m//$'\n'/ }"
    fi
    [[ -z "$_cronium_m" ]] && _cronium_m="HTTP $2"
    printf '%s' "$_cronium_m"
}

# _cronium_request <method> <path> [<json body>] [<options>]
#   <path> may contain {id}, replaced by the URL-encoded execution id.
#   <options>: words "allow404" (a 404 or 405 returns status 3 quietly, the body printed), "nonidempotent"
#   and "if-match=<version>" (a write only at that variable version: 409 otherwise).
# Prints the response body on success. Status: 0 ok, 3 404/405 (with allow404), 1 error (message on stderr).
_cronium_request() {
    local _cronium_method="$1" _cronium_path="$2" _cronium_body="${3-}" _cronium_opts="${4-}"
    _cronium_check || return 1

    local _cronium_url _cronium_token="$CRONIUM_EXECUTION_TOKEN" _cronium_id
    _cronium_url="$(_cronium_api_url)"
    _cronium_id="$(_cronium_urlencode "$CRONIUM_EXECUTION_ID")" || return 1
    _cronium_path="${_cronium_path//'{id}'/$_cronium_id}"

    local _cronium_timeout _cronium_retries _cronium_backoff
    _cronium_timeout="$(_cronium_unum "${CRONIUM_HELPER_TIMEOUT-}" 30)"
    _cronium_retries="$(_cronium_uint "${CRONIUM_HELPER_RETRIES-}" 3)"
    _cronium_backoff="$(_cronium_unum "${CRONIUM_HELPER_BACKOFF-}" 1)"
    local _cronium_attempts=$((_cronium_retries + 1)) _cronium_attempt=1

    local _cronium_idempotent=1
    [[ " $_cronium_opts " == *" nonidempotent "* ]] && _cronium_idempotent=0

    # curl reads this config from stdin, so the token is never on a command line.
    local _cronium_t="${_cronium_token//\\/\\\\}"
    _cronium_t="${_cronium_t//\"/\\\"}"
    local _cronium_cfg="header = \"Authorization: Bearer ${_cronium_t}\""

    local -a _cronium_args=(
        -s --noproxy '*' --path-as-is --proto '=http,https'
        --max-time "$_cronium_timeout"
        -X "$_cronium_method"
        -H "Accept: application/json"
        -H "User-Agent: cronium-helper-bash/$(_cronium_version)"
        -w '\n%{http_code}'
        -K -
    )
    if [[ " $_cronium_opts " == *" if-match="* ]]; then
        local _cronium_version="${_cronium_opts##*if-match=}"
        _cronium_args+=(-H "If-Match: \"${_cronium_version%% *}\"")
    fi
    local _cronium_has_body=0
    if [[ $# -ge 3 && -n "$_cronium_body" ]]; then
        _cronium_has_body=1
        _cronium_args+=(-H "Content-Type: application/json")
    fi

    local _cronium_out _cronium_rc _cronium_code _cronium_resp _cronium_msg _cronium_retry _cronium_delay _cronium_check_out
    while :; do
        [[ -n "${CRONIUM_DEBUG-}" ]] && _cronium_err "$_cronium_method $_cronium_path (attempt $_cronium_attempt/$_cronium_attempts)"
        _cronium_rc=0
        if [[ $_cronium_has_body == 1 ]]; then
            _cronium_out="$(curl "${_cronium_args[@]}" --data-binary @<(printf '%s' "$_cronium_body") \
                "${_cronium_url}${_cronium_path}" <<<"$_cronium_cfg")" || _cronium_rc=$?
        else
            _cronium_out="$(curl "${_cronium_args[@]}" "${_cronium_url}${_cronium_path}" <<<"$_cronium_cfg")" \
                || _cronium_rc=$?
        fi

        _cronium_retry=0
        if [[ $_cronium_rc == 0 ]]; then
            _cronium_code="${_cronium_out##*$'\n'}"
            _cronium_resp="${_cronium_out%$'\n'*}"
            [[ "$_cronium_out" != *$'\n'* ]] && _cronium_resp=""
            if [[ "$_cronium_code" =~ ^2[0-9][0-9]$ ]]; then
                [[ -z "${_cronium_resp//[[:space:]]/}" ]] && _cronium_resp="{}"
                # one jq run: is it JSON, and does it say success:false?
                _cronium_check_out="$(printf '%s' "$_cronium_resp" | jq -r 'if type == "object" and .success == false then "fail" else "ok" end' 2>/dev/null)" \
                    || _cronium_check_out="bad"
                if [[ "$_cronium_check_out" == ok ]]; then
                    printf '%s\n' "$_cronium_resp"
                    return 0
                elif [[ "$_cronium_check_out" == fail ]]; then
                    _cronium_msg="API Error ($_cronium_code): $(_cronium_body_message "$_cronium_resp" "$_cronium_code")"
                else
                    _cronium_msg="API Error ($_cronium_code): the runtime API sent a response that is not JSON"
                fi
            elif [[ ("$_cronium_code" == 404 || "$_cronium_code" == 405) && " $_cronium_opts " == *" allow404 "* ]]; then
                printf '%s\n' "$_cronium_resp"
                return 3
            else
                _cronium_msg="API Error ($_cronium_code): $(_cronium_body_message "$_cronium_resp" "$_cronium_code")"
                if [[ "$_cronium_code" =~ ^5[0-9][0-9]$ && "$_cronium_code" != 501 ]]; then
                    _cronium_retry=1
                fi
            fi
        else
            case $_cronium_rc in
                28)
                    _cronium_msg="request to the runtime API at $_cronium_url timed out after ${_cronium_timeout}s"
                    _cronium_retry=1
                    ;;
                6 | 7)
                    if [[ $_cronium_rc == 6 ]]; then
                        _cronium_msg="could not reach the runtime API at $_cronium_url (could not resolve host)"
                    else
                        _cronium_msg="could not reach the runtime API at $_cronium_url (connection refused)"
                    fi
                    _cronium_retry=1
                    ;;
                52 | 55 | 56)
                    _cronium_msg="could not reach the runtime API at $_cronium_url (connection closed; curl exit $_cronium_rc)"
                    _cronium_retry=$_cronium_idempotent
                    ;;
                *)
                    _cronium_msg="request to the runtime API at $_cronium_url failed (curl exit $_cronium_rc)"
                    ;;
            esac
        fi

        if [[ $_cronium_retry == 1 && $_cronium_attempt -lt $_cronium_attempts ]]; then
            _cronium_delay="$(jq -n --argjson b "$_cronium_backoff" --argjson n "$((_cronium_attempt - 1))" \
                '[$b * pow(2; $n), 30] | min')" || _cronium_delay=1
            sleep "$_cronium_delay" || true
            _cronium_attempt=$((_cronium_attempt + 1))
            continue
        fi
        if [[ $_cronium_retry == 1 && $_cronium_attempt -gt 1 ]]; then
            _cronium_msg="$_cronium_msg (gave up after $_cronium_attempt attempts)"
        fi
        _cronium_msg="${_cronium_msg//"$_cronium_token"/[REDACTED]}"
        _cronium_err "$_cronium_method $_cronium_path: $_cronium_msg"
        return 1
    done
}

# PUT a variable whose value is already JSON text.
_cronium_put_variable_json() { # <key> <json>
    local _cronium_k
    _cronium_k="$(_cronium_urlencode "$1")" || return 1
    _cronium_request PUT "/executions/{id}/variables/$_cronium_k" "{\"value\":$2}" >/dev/null
}

# GET a variable; prints the response through jq <filter>, or <missing> when there is no such
# variable. Status 0, or 1 on error.
_cronium_get_variable_as() { # <key> <jq args…> -- <missing>
    local _cronium_k _cronium_resp _cronium_rc=0 _cronium_missing="${*: -1}"
    _cronium_k="$(_cronium_urlencode "$1")" || return 1
    shift
    local _cronium_jq=("${@:1:$#-2}")
    _cronium_resp="$(_cronium_request GET "/executions/{id}/variables/$_cronium_k" "" allow404)" || _cronium_rc=$?
    case $_cronium_rc in
        0) printf '%s' "$_cronium_resp" | jq "${_cronium_jq[@]}" ;;
        3) printf '%s\n' "$_cronium_missing" ;;
        *) return 1 ;;
    esac
}

# GET a variable; prints its JSON value ("null" when missing). Status 0, or 1 on error.
_cronium_get_variable_json() { # <key>
    _cronium_get_variable_as "$1" -c 'try .data.value catch null' -- null
}

# POST an atomic update route (increment, append); prints the new JSON value.
# Status 0, 3 when the sidecar has no such route (older sidecar: the caller falls back), 1 on error.
_cronium_atomic_update() { # <key> <route> <json body>
    local _cronium_k _cronium_resp _cronium_rc=0
    _cronium_k="$(_cronium_urlencode "$1")" || return 1
    _cronium_resp="$(_cronium_request POST "/executions/{id}/variables/$_cronium_k/$2" "$3" "allow404 nonidempotent")" \
        || _cronium_rc=$?
    [[ $_cronium_rc == 0 ]] || return $_cronium_rc
    printf '%s' "$_cronium_resp" | jq -c '.data.value'
}

# GET a variable; prints "<version> <JSON value>" (version 0 and null when missing).
_cronium_get_variable_versioned() { # <key>
    _cronium_get_variable_as "$1" -r '"\(.data.version // 1) \(.data.value | tojson)"' -- "0 null"
}

_cronium_need_key() { # <function> <key>
    if [[ -z "${2-}" ]]; then
        _cronium_err "$1: a variable key is required"
        return 1
    fi
}

# ------------------------------------------------------------------------------------------------
# public functions

cronium_input() {
    local _cronium_raw=0
    [[ "${1-}" == "-r" ]] && _cronium_raw=1
    local _cronium_resp
    _cronium_resp="$(_cronium_request GET "/executions/{id}/input")" || return 1
    if [[ $_cronium_raw == 1 ]]; then
        printf '%s' "$_cronium_resp" | jq -r 'try .data catch null'
    else
        printf '%s' "$_cronium_resp" | jq -c 'try .data catch null'
    fi
}

cronium_output() {
    if [[ $# -lt 1 ]]; then
        _cronium_err "cronium_output: a value is required (JSON, or text sent as a JSON string)"
        return 1
    fi
    local _cronium_v
    _cronium_v="$(_cronium_json_value "$1")" || return 1
    _cronium_request POST "/executions/{id}/output" "{\"data\":$_cronium_v}" >/dev/null
}

cronium_get_variable() {
    local _cronium_raw=0
    if [[ "${1-}" == "-r" ]]; then
        _cronium_raw=1
        shift
    fi
    _cronium_need_key cronium_get_variable "${1-}" || return 1
    local _cronium_v
    _cronium_v="$(_cronium_get_variable_json "$1")" || return 1
    if [[ $_cronium_raw == 1 ]]; then
        printf '%s' "$_cronium_v" | jq -r '.'
    else
        printf '%s\n' "$_cronium_v"
    fi
}

cronium_set_variable() {
    _cronium_need_key cronium_set_variable "${1-}" || return 1
    if [[ $# -lt 2 ]]; then
        _cronium_err "cronium_set_variable: usage: cronium_set_variable <key> <value>"
        return 1
    fi
    local _cronium_v
    _cronium_v="$(_cronium_json_value "$2")" || return 1
    _cronium_put_variable_json "$1" "$_cronium_v"
}

cronium_delete_variable() {
    _cronium_need_key cronium_delete_variable "${1-}" || return 1
    local _cronium_k _cronium_resp _cronium_rc=0
    _cronium_k="$(_cronium_urlencode "$1")" || return 1
    _cronium_resp="$(_cronium_request DELETE "/executions/{id}/variables/$_cronium_k" "" allow404)" || _cronium_rc=$?
    [[ $_cronium_rc == 3 ]] || return $_cronium_rc
    # 404 "variable_not_found": it was not set. Any other 404/405: a sidecar without the DELETE route.
    [[ "$(printf '%s' "$_cronium_resp" | jq -r '.error? // empty' 2>/dev/null)" == variable_not_found ]] && return 0
    _cronium_put_variable_json "$1" null
}

cronium_get_variable_version() {
    _cronium_need_key cronium_get_variable_version "${1-}" || return 1
    local _cronium_v
    _cronium_v="$(_cronium_get_variable_versioned "$1")" || return 1
    printf '%s\n' "${_cronium_v%% *}"
}

cronium_set_variable_if_version() {
    _cronium_need_key cronium_set_variable_if_version "${1-}" || return 1
    if [[ $# -lt 3 || ! "${2-}" =~ ^[0-9]+$ ]]; then
        _cronium_err "cronium_set_variable_if_version: usage: cronium_set_variable_if_version <key> <version> <value>"
        return 1
    fi
    local _cronium_k _cronium_v
    _cronium_k="$(_cronium_urlencode "$1")" || return 1
    _cronium_v="$(_cronium_json_value "$3")" || return 1
    _cronium_request PUT "/executions/{id}/variables/$_cronium_k" "{\"value\":$_cronium_v}" "if-match=$2" >/dev/null
}

cronium_variable_exists() {
    _cronium_need_key cronium_variable_exists "${1-}" || return 2
    local _cronium_v
    _cronium_v="$(_cronium_get_variable_json "$1")" || return 2
    [[ "$_cronium_v" != "null" ]]
}

cronium_increment_variable() {
    _cronium_need_key cronium_increment_variable "${1-}" || return 1
    local _cronium_by="${2-1}"
    if ! [[ "$_cronium_by" =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$ ]]; then
        _cronium_err "cronium_increment_variable: increment must be a number, got '$_cronium_by'"
        return 1
    fi
    local _cronium_cur _cronium_new _cronium_rc=0
    _cronium_new="$(_cronium_atomic_update "$1" increment "{\"by\":$_cronium_by}")" || _cronium_rc=$?
    if [[ $_cronium_rc == 0 ]]; then
        printf '%s\n' "$_cronium_new"
        return 0
    fi
    [[ $_cronium_rc == 3 ]] || return 1
    # An older sidecar without the atomic route: read, add, write (concurrent updates may be lost).
    _cronium_cur="$(_cronium_get_variable_json "$1")" || return 1
    _cronium_new="$(printf '%s' "$_cronium_cur" | jq -c --argjson by "$_cronium_by" '
        if . == null then $by
        elif type == "number" then . + $by
        elif type == "string" and test("^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$") then (tonumber + $by)
        else error("holds \(type), not a number") end' 2>&1)" || {
        _cronium_err "cronium_increment_variable: variable '$1' ${_cronium_new#jq: error (at *): }"
        return 1
    }
    _cronium_put_variable_json "$1" "$_cronium_new" || return 1
    printf '%s\n' "$_cronium_new"
}

cronium_append_variable() {
    _cronium_need_key cronium_append_variable "${1-}" || return 1
    if [[ $# -lt 2 ]]; then
        _cronium_err "cronium_append_variable: usage: cronium_append_variable <key> <value> [separator]"
        return 1
    fi
    local _cronium_item _cronium_cur _cronium_new _cronium_body _cronium_rc=0
    _cronium_item="$(_cronium_json_value "$2")" || return 1
    _cronium_body="$(jq -nc --argjson v "$_cronium_item" --arg sep "${3-}" '{value: $v, separator: $sep}')" || return 1
    _cronium_atomic_update "$1" append "$_cronium_body" >/dev/null || _cronium_rc=$?
    [[ $_cronium_rc == 3 ]] || return $_cronium_rc
    # An older sidecar without the atomic route: read, append, write (concurrent updates may be lost).
    _cronium_cur="$(_cronium_get_variable_json "$1")" || return 1
    _cronium_new="$(printf '%s\n%s' "$_cronium_cur" "$_cronium_item" | jq -sc --arg sep "${3-}" '
        .[0] as $cur | .[1] as $item
        | ($item | if type == "string" then . else tojson end) as $text
        | if $cur == null then $item
          elif ($cur | type) == "array" then $cur + [$item]
          elif ($cur | type) == "string" then (if $cur == "" then $text else $cur + $sep + $text end)
          elif ($cur | type) == "object" then error("holds an object; cannot append")
          else ($cur | tojson) + $sep + $text end' 2>&1)" || {
        _cronium_err "cronium_append_variable: variable '$1' ${_cronium_new#jq: error (at *): }"
        return 1
    }
    _cronium_put_variable_json "$1" "$_cronium_new"
}

cronium_set_condition() {
    local _cronium_c
    local _cronium_word="${1-}"
    case "${_cronium_word,,}" in
        true | 1 | yes | on) _cronium_c=true ;;
        false | 0 | no | off) _cronium_c=false ;;
        *)
            _cronium_err "cronium_set_condition: invalid condition '${1-}': use true/false, 1/0, yes/no or on/off"
            return 1
            ;;
    esac
    _cronium_request POST "/executions/{id}/condition" "{\"condition\":$_cronium_c}" >/dev/null
}

cronium_event() {
    local _cronium_resp
    _cronium_resp="$(_cronium_request GET "/executions/{id}/context")" || return 1
    printf '%s' "$_cronium_resp" | jq -c 'try (.data // {}) catch {}'
}

cronium_event_field() {
    if [[ -z "${1-}" ]]; then
        _cronium_err "cronium_event_field: a field name is required"
        return 1
    fi
    local _cronium_ctx
    _cronium_ctx="$(cronium_event)" || return 1
    printf '%s' "$_cronium_ctx" | jq -rc --arg f "$1" 'try getpath($f | split(".")) catch null | if . == null then empty else . end'
}

cronium_execute_tool_action() {
    if [[ -z "${1-}" || -z "${2-}" ]]; then
        _cronium_err "cronium_execute_tool_action: usage: cronium_execute_tool_action <tool> <action> [json]"
        return 1
    fi
    local _cronium_params="${3-}"
    [[ -z "$_cronium_params" ]] && _cronium_params="{}"
    if ! _cronium_is_json "$_cronium_params"; then
        _cronium_err "cronium_execute_tool_action: the configuration is not valid JSON"
        return 1
    fi
    local _cronium_t _cronium_a _cronium_resp
    _cronium_t="$(_cronium_json_string "$1")" || return 1
    _cronium_a="$(_cronium_json_string "$2")" || return 1
    _cronium_resp="$(_cronium_request POST "/tool-actions/execute" \
        "{\"tool\":$_cronium_t,\"action\":$_cronium_a,\"params\":$_cronium_params}" nonidempotent)" || return 1
    printf '%s' "$_cronium_resp" | jq -c 'try .data catch null'
}

_cronium_csv_json() { printf '%s' "$1" | jq -Rsc 'split(",") | map(gsub("^\\s+|\\s+$"; "")) | map(select(length > 0))'; }

cronium_send_email() {
    if [[ $# -lt 3 ]]; then
        _cronium_err "cronium_send_email: usage: cronium_send_email <to,...> <subject> <body> [--cc a,b] [--bcc a,b] [--html]"
        return 1
    fi
    local _cronium_cfg _cronium_x
    _cronium_cfg="{\"to\":$(_cronium_csv_json "$1"),\"subject\":$(_cronium_json_string "$2"),\"body\":$(_cronium_json_string "$3")"
    shift 3
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --cc | --bcc)
                if [[ $# -lt 2 ]]; then _cronium_err "cronium_send_email: $1 needs a value"; return 1; fi
                _cronium_x="$(_cronium_csv_json "$2")" || return 1
                _cronium_cfg+=",\"${1#--}\":$_cronium_x"
                shift 2
                ;;
            --html) _cronium_cfg+=',"html":true'; shift ;;
            *) _cronium_err "cronium_send_email: unknown option '$1'"; return 1 ;;
        esac
    done
    cronium_execute_tool_action email send_message "$_cronium_cfg}"
}

cronium_send_slack_message() {
    if [[ $# -lt 2 ]]; then
        _cronium_err "cronium_send_slack_message: usage: cronium_send_slack_message <channel> <text> [--username v] [--icon-emoji v] [--icon-url v]"
        return 1
    fi
    local _cronium_cfg _cronium_name
    _cronium_cfg="{\"channel\":$(_cronium_json_string "$1"),\"text\":$(_cronium_json_string "$2")"
    shift 2
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --username) _cronium_name=username ;;
            --icon-emoji) _cronium_name=icon_emoji ;;
            --icon-url) _cronium_name=icon_url ;;
            *) _cronium_err "cronium_send_slack_message: unknown option '$1'"; return 1 ;;
        esac
        if [[ $# -lt 2 ]]; then _cronium_err "cronium_send_slack_message: $1 needs a value"; return 1; fi
        _cronium_cfg+=",\"$_cronium_name\":$(_cronium_json_string "$2")"
        shift 2
    done
    cronium_execute_tool_action slack send_message "$_cronium_cfg}"
}

cronium_send_discord_message() {
    if [[ $# -lt 2 ]]; then
        _cronium_err "cronium_send_discord_message: usage: cronium_send_discord_message <channel-id> <content> [--embed json]"
        return 1
    fi
    local _cronium_cfg
    _cronium_cfg="{\"channelId\":$(_cronium_json_string "$1"),\"content\":$(_cronium_json_string "$2")"
    shift 2
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --embed)
                if [[ $# -lt 2 ]] || ! _cronium_is_json "$2"; then
                    _cronium_err "cronium_send_discord_message: --embed needs a JSON object"
                    return 1
                fi
                _cronium_cfg+=",\"embeds\":[$2]"
                shift 2
                ;;
            *) _cronium_err "cronium_send_discord_message: unknown option '$1'"; return 1 ;;
        esac
    done
    cronium_execute_tool_action discord send_message "$_cronium_cfg}"
}

cronium_info() {
    printf 'cronium bash helper %s\n' "$(_cronium_version)"
    printf 'runtime API:   %s\n' "$(_cronium_api_url)"
    printf 'execution id:  %s\n' "${CRONIUM_EXECUTION_ID:-(not set)}"
    printf 'job id:        %s\n' "${CRONIUM_JOB_ID:-(not set)}"
    printf 'job type:      %s\n' "${CRONIUM_JOB_TYPE:-(not set)}"
    if [[ -n "${CRONIUM_EXECUTION_TOKEN-}" ]]; then
        printf 'token:         set (not shown)\n'
    else
        printf 'token:         NOT SET\n'
    fi
    local _cronium_tool
    for _cronium_tool in curl jq; do
        if command -v "$_cronium_tool" >/dev/null 2>&1; then
            printf '%-14s %s\n' "$_cronium_tool:" "found"
        else
            printf '%-14s %s\n' "$_cronium_tool:" "MISSING"
        fi
    done
}

