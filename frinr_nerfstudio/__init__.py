"""frinr_nerfstudio: nerfstudio methods whose MLP heads use Fourier reparameterized layers."""
