from lf2.cli import main

raise SystemExit(main())
