from include.cosmos_archiver.cli.main import main

raise SystemExit(main())
