"""The store backends that keep state in this process (the default, `APP_STORE=memory`): one
module per seam, mirroring app/redis; app/stores holds the interfaces they implement."""
