# Imported by install_client.py BEFORE certpin.install(): the references a
# library may already hold to the TLS modules (the module, its SSLContext
# class, ssl's module-level wrap_socket). install() must pin them too.
import ssl
import tls
from ssl import SSLContext as ssl_SSLContext
from ssl import wrap_socket
from tls import SSLContext
