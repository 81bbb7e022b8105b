"""`xhub demo --federation`: two district hubs on clusters of their own feed the city hub on a third."""
