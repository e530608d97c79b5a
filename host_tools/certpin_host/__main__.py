from certpin_host.cli import main

raise SystemExit(main())
