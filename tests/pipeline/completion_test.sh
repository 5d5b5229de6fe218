#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The bash completions of nmimgrctl and nmimgr-vmcore-check, loaded into
# Debian's bash-completion as it loads them: commands, each command's
# options, files where a file is wanted.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
bc=/usr/share/bash-completion/bash_completion
[ -r "$bc" ] || skip "bash-completion is missing (apt-get install bash-completion)"
fresh_work
cd "$NMIMGR_TEST_WORK" || exit 1
: > dump.202612040000
# complete LINE: what completing the last word of LINE offers, sorted
complete_line() {
	bash -c '
		set +u
		# shellcheck disable=SC1090 # the completion files are arguments
		source "$1"
		source "$2/tools/completion/nmimgrctl"
		source "$2/tools/completion/nmimgr-vmcore-check"
		read -r -a COMP_WORDS <<< "$3"
		case $3 in *" ") COMP_WORDS+=("") ;; esac
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE=$3
		COMP_POINT=${#COMP_LINE}
		func=$(complete -p "${COMP_WORDS[0]}" | sed "s/.*-F \([^ ]*\) .*/\1/")
		"$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "
	' complete "$bc" "$NMIMGR_SOURCE_DIR" "$1"
}
expect_eq "nmimgrctl's commands" "$(complete_line 'nmimgrctl ')" "--help discover doctor set status test "
expect_eq "a command from its start" "$(complete_line 'nmimgrctl di')" "discover "
expect_eq "set's options" "$(complete_line 'nmimgrctl set --p')" "--panic --persist --prometheus "
expect_eq "doctor's own option" "$(complete_line 'nmimgrctl doctor --no')" "--no-mem-usage "
expect_eq "no value offered for a code list" "$(complete_line 'nmimgrctl set --panic ')" ""
expect_eq "a file for --prometheus" "$(complete_line 'nmimgrctl status --prometheus dump')" "dump.202612040000 "
expect_eq "nmimgr-vmcore-check's options" "$(complete_line 'nmimgr-vmcore-check --j')" "--journal --json "
expect_eq "test's options" "$(complete_line 'nmimgrctl test --')" \
	"--help --journal --loader --no-mem-usage --report --root --yes-crash-this-machine "
expect_eq "nmimgr-vmcore-check's metrics file" "$(complete_line 'nmimgr-vmcore-check --prometheus dump')" "dump.202612040000 "
expect_eq "nmimgr-vmcore-check's paths" "$(complete_line 'nmimgr-vmcore-check dump')" "dump.202612040000 "
finish
