#!/bin/sh
# copyright.sh BINARY: writes /usr/share/doc/hark/copyright (Debian's
# machine-readable format) to stdout: hark's own terms from
# packaging/copyright, then those of the Go runtime and of every Go module
# linked into BINARY (as `go version -m` lists them), taken from the
# module cache. Those licences (BSD, MIT) ask that binary copies carry
# their notices; an unknown licence stops the build for a person to look.
set -eu
bin=$1
here=$(dirname "$0")

# indent: a licence text as a DEP-5 field continuation.
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$1"; }

# stanza FILES VERSION DIR LICENSEFILE COMMENT
stanza() {
	text=$4
	holder=$(grep -m1 -E '^[[:space:]]*Copyright' "$text" | sed -e 's/^[[:space:]]*Copyright[[:space:]]*//' -e 's/^([cC])[[:space:]]*//' || true)
	[ -n "$holder" ] || holder="the authors of ${1%/\*}"
	printf '\nFiles: %s\nCopyright: %s\n' "$1" "$holder"
	if grep -q 'Apache License' "$text" && grep -q 'Version 2.0' "$text"; then
		printf 'License: Apache-2.0\n'
		printf ' On Debian systems the full text of the Apache License 2.0 is in\n /usr/share/common-licenses/Apache-2.0.\n'
	else
		if grep -q 'Permission is hereby granted, free of charge' "$text"; then
			name=Expat
		elif grep -q 'Neither the name' "$text"; then
			name=BSD-3-clause
		elif grep -q 'Redistribution and use in source and binary forms' "$text"; then
			name=BSD-2-clause
		else
			echo "copyright.sh: $1 $2: unknown licence in $text; add it to packaging/copyright.sh after checking it allows redistribution" >&2
			exit 1
		fi
		printf 'License: %s\n' "$name"
		indent "$text"
	fi
	printf 'Comment: %s\n' "$5"
	for n in NOTICE NOTICE.txt NOTICE.md; do
		if [ -f "$3/$n" ]; then
			printf ' Its %s:\n .\n' "$n"
			indent "$3/$n"
		fi
	done
}

cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hark
Upstream-Contact: https://github.com/harkapp/hark/issues
Source: https://github.com/harkapp/hark
Comment: /usr/bin/hark is a statically linked Go program: besides hark's
 own code it contains the Go runtime and standard library and the Go
 modules listed below, each under its own licence.

HEAD
cat "$here/copyright"

goroot=$(go env GOROOT)
gover=$(go version "$bin" | awk '{print $2}')
stanza "go/*" "$gover" "$goroot" "$goroot/LICENSE" "The Go runtime and standard library ($gover), linked into /usr/bin/hark."

go version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r mod ver; do
	dir=$(go mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	lic=
	for f in LICENSE LICENSE.txt LICENSE.md LICENCE COPYING COPYING.txt; do
		if [ -f "$dir/$f" ]; then lic=$dir/$f; break; fi
	done
	if [ -z "$lic" ]; then
		echo "copyright.sh: $mod $ver has no licence file in $dir" >&2
		exit 1
	fi
	stanza "$mod/*" "$ver" "$dir" "$lic" "Go module $mod $ver, linked into /usr/bin/hark."
done
