from cascade_studio.cli import main

raise SystemExit(main())
