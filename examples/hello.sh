#!/bin/bash
# A bash job: the helper is sourced on request, never forced into every shell.
source cronium.sh
echo "hello from bash, input: $(cronium_input)"
cronium_set_variable bash_greeting '"hi from bash"'
cronium_output '{"shell": "bash"}'
