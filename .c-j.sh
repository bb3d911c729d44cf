journalctl --no-pager -n 400 -o cat | grep -v "cgroups from" | grep -v "^  \|^Traceback\|^Call stack\|^---\|^Arguments\|^AttributeError\|^    " | tail -60
