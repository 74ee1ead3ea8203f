from percolate_reading.cli.main import main

raise SystemExit(main())
